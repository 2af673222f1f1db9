"""LLM-as-a-judge prompts: a template file per rubric, rendering, and score parsing.

A template file starts with a header of `#` lines (where the rubric comes from, what was
adapted); the body after the header is the prompt, with the placeholders `{prompt}` and
`{response}`. Placeholders are replaced literally (no str.format), so a rubric may contain
braces. Scores are read with a regex whose first group is the number; the LAST match counts,
because a justification may quote "Score:" before the verdict (Yuan et al. 2024, Figure 2: the
verdict ends the judgment).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from omegaconf import OmegaConf

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
PLACEHOLDERS = ("{prompt}", "{response}")


class JudgeConfigError(ValueError):
    """A template or score regex that cannot work; the message says what to write instead."""


def score_problems(name: str, s) -> list[str]:
    """A judging stage section's own numbers (its kind's `check` calls this; disabled: none)."""
    out: list[str] = []
    if not s.enabled:
        return out
    if "samples" in s and s.samples < 1:
        out.append(f"{name}.samples must be >= 1 (got {s.samples}); the paper judges each response 3 times.")
    if s.max_score <= s.min_score:
        out.append(f"{name}.max_score must be above {name}.min_score (got {s.min_score}..{s.max_score}).")
    return out


def template_path(name: str) -> Path:
    """A shipped template by file name (selfimprove/judges/templates/), else a path."""
    shipped = TEMPLATES_DIR / name
    return shipped if shipped.is_file() else Path(name).expanduser()


@dataclass(frozen=True)
class JudgeTemplate:
    path: str
    header: str
    body: str

    def render(self, prompt: str, response: str) -> str:
        # one pass over the body, so a response containing "{prompt}" is not expanded again
        return re.sub(r"\{prompt\}|\{response\}", lambda m: prompt if m.group(0) == "{prompt}" else response,
                      self.body)


def load_template(name: str) -> JudgeTemplate:
    path = template_path(name)
    if not path.is_file():
        shipped = ", ".join(sorted(p.name for p in TEMPLATES_DIR.glob("*.txt")))
        raise JudgeConfigError(f"judge.template '{name}' is neither a shipped template ({shipped}) nor a file. "
                               f"Write judge.template=<one of those> or a path to your own template file.")
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    n = 0
    while n < len(lines) and lines[n].startswith("#"):
        n += 1
    header, body = "".join(lines[:n]), "".join(lines[n:]).rstrip("\n")
    missing = [p for p in PLACEHOLDERS if p not in body]
    if missing:
        raise JudgeConfigError(
            f"judge template {path} lacks the placeholder(s) {', '.join(missing)}: the judge prompt must show the "
            f"user's prompt and the response being judged. Add them to the body (after the # header lines), e.g. "
            f"'User: {{prompt}}\\n<response>{{response}}</response>'.")
    if not header.strip():
        raise JudgeConfigError(f"judge template {path} has no header: start it with '#' lines saying where its "
                               f"rubric comes from (paper, figure) and what was adapted.")
    return JudgeTemplate(str(path), header, body)


def compile_score_regex(pattern: str) -> re.Pattern:
    try:
        rx = re.compile(pattern)
    except re.error as exc:
        raise JudgeConfigError(f"judge.score_regex '{pattern}' is not a valid regex ({exc}). "
                               r"The paper's form is 'Score: ([0-9.]+)'.") from None
    if rx.groups < 1:
        raise JudgeConfigError(f"judge.score_regex '{pattern}' has no capture group for the number; write e.g. "
                               r"'Score: ([0-9.]+)'.")
    return rx


def parse_score(text: str, rx: re.Pattern, low: float, high: float) -> Optional[float]:
    """The score in a judgment: the last match of `rx`, as a number in [low, high]; None when
    there is no match, the number does not parse, or it is out of range (unparseable)."""
    if not isinstance(text, str):
        return None
    matches = list(rx.finditer(text))
    if not matches:
        return None
    try:
        value = float(matches[-1].group(1).rstrip("."))  # "Score: 4." ends a sentence
    except (TypeError, ValueError):
        return None
    return value if low <= value <= high else None


def check_regex_on(rx: re.Pattern, judgments: Sequence[str], low: float, high: float, where: str) -> None:
    """Startup check: the regex must read a score from the EFT judgments the model is taught."""
    if not judgments:
        return
    read = sum(parse_score(j, rx, low, high) is not None for j in judgments)
    if read == 0:
        raise JudgeConfigError(
            f"judge.score_regex '{rx.pattern}' reads no score in [{low:g}, {high:g}] from any of the "
            f"{len(judgments)} EFT judgments in {where} (the last one ends: {judgments[-1][-60:]!r}). "
            f"Make the regex match how those judgments write the score, e.g. judge.score_regex='Score: ([0-9.]+)'.")


# Every judge stage's section holds `template_sha256: ${template_sha256:${.template}}`: registered
# here, beside the templates, so any code that resolves a judge section has the resolver.
def _template_sha256(name: str) -> str:
    """The judge template file's checksum, part of every judge stage's config: stage fingerprints
    follow the file's content, not just its name (an edited rubric recomputes what it affects)."""
    import hashlib

    path = template_path(str(name))
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else "missing"


OmegaConf.register_new_resolver("template_sha256", _template_sha256, replace=True)
