"""GSM8K: grade-school math word problems with worked solutions (Cobbe et al., 2021).

    prompt:      "Q: Janet's ducks lay 16 eggs per day. ... ?\nA:"
    hinted:      "Q: Janet's ducks lay 16 eggs per day. ... ? (18)\nA:"     (STaR rationalization)
    completion:  " Janet sells 16 - 3 - 4 = 9 duck eggs a day.\nShe makes 9 * 2 = $18 every day ...\n#### 18"

With `fewshot: true` every prompt (hinted ones too, with their exemplars hinted) is prefixed by
`num_fewshot` worked exemplars as "Q: ...\nA: <solution>\n\n" blocks. The exemplars are drawn
from the training file with `data_seed`, excluded from `train` and `val`, and form the `seed`
split (their worked solution is the seed SFT completion). GSM8K's calculator annotations
(`<<48/2=24>>`) are stripped from every solution a model is shown or trained on.

Data comes from two GSM8K-format JSONL files (`train_path`, `test_path`; one object a line with
`question` and `answer`, the answer being the worked solution ending in "#### <number>"), or,
when both are null, from the Hugging Face dataset `hf_dataset` (config `hf_config`). `val` is
carved from the training file. Difficulty is the number of solution lines (reasoning steps).

The checker reads the answer a model wrote in any of the usual formats, in this order of
priority: a "#### N" line, the last \\boxed{N}, the last "the answer is N", and otherwise the
last number in the text (ignoring numbers in an echo of the question). Answers are normalised
to a canonical string ("1,234.00" -> "1234", "$-5" -> "-5", "0.50" -> "0.5", "\\frac{1}{2}" ->
"0.5", "1/3" stays "1/3"), so equal answers compare equal as strings (majority voting relies on
this).
"""
from __future__ import annotations

import json
import os
import random
import re
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path
from typing import Optional

from . import CorrectionTask, TaskDataError, register_task

ANNOTATION_RE = re.compile(r"<<[^<>]*>>")
_MINUS = "-\u2212\u2013"  # hyphen-minus, unicode minus, en dash
# A number as models write it: optional sign and/or dollar sign, thousands separators, decimals.
# A minus glued to a preceding operand ("16-3") is subtraction, not a sign: the lookbehind keeps
# numbers from starting right after a word character, a dot or a closing bracket.
NUMBER_RE = re.compile(
    rf"(?<![\w.)\]}}])(?:[{_MINUS}]\$?|\$\s?[{_MINUS}]?)?"
    r"(?:[0-9]{1,3}(?:,[0-9]{3})+(?![0-9])|[0-9]+)(?:\.[0-9]+)?"
    rf"|(?<![\w.)\]}}])[{_MINUS}]?\.[0-9]+"
)
ANSWER_IS_RE = re.compile(
    r"answer\s*(?:is|was|would be|will be|should be|=|:)\s*:?", re.IGNORECASE
)
NEW_QUESTION_RE = re.compile(r"\n\s*(?:Q|Question)\s*:")
LATEX_FRAC_RE = re.compile(r"^([-\u2212]?)\\[dt]?frac\{([^{}]+)\}\{([^{}]+)\}$")


# ----------------------------------------------------------------------------- answers
def strip_annotations(text: str) -> str:
    """Remove GSM8K's calculator annotations: "48/2 = <<48/2=24>>24" -> "48/2 = 24"."""
    return ANNOTATION_RE.sub("", text)


def _canonical(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    d, twos, fives = value.denominator, 0, 0
    while d % 2 == 0:
        d, twos = d // 2, twos + 1
    while d % 5 == 0:
        d, fives = d // 5, fives + 1
    if d != 1:  # not a terminating decimal: keep the reduced fraction
        return f"{value.numerator}/{value.denominator}"
    places = max(twos, fives)  # terminating decimal, written out exactly: "0.5", "-2.25"
    digits = str(abs(value.numerator) * 10**places // value.denominator).rjust(places + 1, "0")
    return ("-" if value < 0 else "") + f"{digits[:-places]}.{digits[-places:]}"


_PLAIN_RE = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


def _to_fraction(text: str) -> Optional[Fraction]:
    s = text.strip()
    for ch in _MINUS:
        s = s.replace(ch, "-")
    s = re.sub(r"[\s$,%]", "", s).rstrip(".")
    if s.startswith("--"):
        return None
    parts = s.split("/")
    if len(parts) > 2 or not all(_PLAIN_RE.fullmatch(x) for x in parts):
        return None
    try:
        value = Fraction(Decimal(parts[0]))
        return value / Fraction(Decimal(parts[1])) if len(parts) == 2 else value
    except (InvalidOperation, ValueError, ZeroDivisionError, OverflowError):
        return None


def normalize_answer(text) -> Optional[str]:
    """Canonical string of a numeric answer, or None when `text` is not a number."""
    if text is None:
        return None
    value = _to_fraction(str(text))
    return None if value is None else _canonical(value)


def _numbers(text: str) -> list[str]:
    return NUMBER_RE.findall(text)


def _first_number(text: str) -> Optional[str]:
    m = NUMBER_RE.search(text)
    return normalize_answer(m.group(0)) if m else None


# what may follow an answer line's first number and make it a fraction: "3/4", "12 / 4"; or, after
# a whole number, a mixed number's fraction part: "1 1/2"
_OVER_RE = re.compile(r"\s*/\s*([0-9]+(?:\.[0-9]+)?)(?![0-9.,/])")
_MIXED_RE = re.compile(r"\s+([0-9]+)\s*/\s*([0-9]+)(?![0-9.,/])")


def _line_number(line: str) -> Optional[str]:
    """The number an answer line ("#### ...") writes, whole: "3/4" is 0.75, "1 1/2" is 1.5, "2.50" is
    2.5, not their first digits."""
    m = NUMBER_RE.search(line)
    if not m:
        return None
    first, rest = m.group(0), line[m.end():]
    mixed = _MIXED_RE.match(rest)
    value = _to_fraction(first)
    if mixed and value is not None and value.denominator == 1:
        part = Fraction(int(mixed.group(1)), int(mixed.group(2))) if int(mixed.group(2)) else None
        if part is not None and part < 1:
            return _canonical(value - part if value < 0 or first.lstrip("$").startswith(tuple(_MINUS)) else value + part)
    over = _OVER_RE.match(rest)
    if over:
        return normalize_answer(f"{first}/{over.group(1)}")
    return normalize_answer(first)


def _boxed_contents(text: str) -> list[str]:
    out = []
    for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            out.append(text[m.end():i - 1])
    return out


def _latex_answer(content: str) -> Optional[str]:
    s = content.replace("{,}", ",").replace("\\!", "").replace("\\,", "").replace("\\$", "$")
    s = s.replace("\\%", "%").replace("\\left", "").replace("\\right", "")
    s = re.sub(r"\\text\{[^{}]*\}|\\mathrm\{[^{}]*\}|\^\{?\\circ\}?", "", s).strip().strip("$ ")
    m = LATEX_FRAC_RE.match(s)
    if m:
        return normalize_answer(f"{'-' if m.group(1) else ''}{m.group(2)}/{m.group(3)}")
    if re.fullmatch(rf"[{_MINUS}]?\s*[0-9.,]+\s*/\s*[0-9.,]+", s):
        return normalize_answer(s)
    return _first_number(s)


def _after_answer_is(text: str) -> Optional[str]:
    matches = list(ANSWER_IS_RE.finditer(text))
    for m in reversed(matches):  # the last statement of the answer wins
        segment = text[m.end():].split("\n", 1)[0]
        segment = re.split(r"\.(?=\s|$)", segment, maxsplit=1)[0]  # up to the end of the sentence
        if "=" in segment:  # "the answer is 3 + 5 = 8"
            segment = segment.rsplit("=", 1)[1]
        found = _first_number(segment)
        if found is not None:
            return found
    return None


def _without_question(text: str, question: Optional[str]) -> str:
    """Drop an echo of the question, so that its numbers are not read as the answer."""
    if not question:
        return text
    parts = [question, *re.split(r"(?<=[.?!])\s+", question)]
    for part in sorted({p.strip() for p in parts}, key=len, reverse=True):
        if len(part) >= 15:
            text = text.replace(part, " ")
    return text


def extract(text, question: Optional[str] = None) -> Optional[str]:
    """The final answer in a completion, normalised; None when there is none.

    Priority: the "####" line, then the last \\boxed{}, then the last "answer is", then the last
    number in the text (not counting numbers in an echo of `question`)."""
    if not isinstance(text, str):
        return None
    text = strip_annotations(truncate(text))
    idx = text.find("####")
    if idx >= 0:
        return _line_number(text[idx + 4:].split("\n", 1)[0])
    for content in reversed(_boxed_contents(text)):
        found = _latex_answer(content)
        if found is not None:
            return found
    found = _after_answer_is(text)
    if found is not None:
        return found
    numbers = _numbers(_without_question(text, question))
    return normalize_answer(numbers[-1]) if numbers else None


def truncate(text):
    """Cut after the "####" answer line, or where the model starts a new "Q:", whichever is first."""
    if not isinstance(text, str):
        return text
    cut = len(text)
    idx = text.find("####")
    if idx >= 0:
        end = text.find("\n", idx)
        cut = len(text) if end < 0 else end
    m = NEW_QUESTION_RE.search(text)
    if m and m.start() < cut:
        return text[:m.start()].rstrip()
    return text[:cut]


def answers_equal(pred: Optional[str], gold: Optional[str]) -> bool:
    if pred is None or gold is None:
        return False
    if pred == gold:
        return True
    a, b = _to_fraction(pred), _to_fraction(gold)
    return a is not None and a == b


# ----------------------------------------------------------------------------- data
def gold_of(solution: str) -> Optional[str]:
    """The normalised final answer of a GSM8K worked solution (the text after "####")."""
    idx = solution.rfind("####")
    return None if idx < 0 else _line_number(strip_annotations(solution[idx + 4:]).strip().split("\n", 1)[0])


def _row(raw, where: str) -> dict:
    if not isinstance(raw, dict):
        raise TaskDataError(f"{where}: expected a JSON object with 'question' and 'answer', got {type(raw).__name__}")
    missing = [k for k in ("question", "answer") if k not in raw]
    if missing:
        raise TaskDataError(f"{where}: missing key {' and '.join(repr(k) for k in missing)} "
                         f"(a GSM8K row needs 'question' and 'answer'; found {sorted(raw)})")
    for k in ("question", "answer"):
        if not isinstance(raw[k], str) or not raw[k].strip():
            raise TaskDataError(f"{where}: '{k}' must be a non-empty string")
    gold = gold_of(raw["answer"])
    if gold is None:
        raise TaskDataError(f"{where}: 'answer' must be a worked solution ending in a '#### <number>' line, "
                         f"got ...{raw['answer'][-60:]!r}")
    return {"question": raw["question"].strip(), "solution": raw["answer"], "gold": gold}


def read_gsm8k_jsonl(path, option: str = "path", row=_row,
                     example: str = '{"question": ..., "answer": "... #### N"}') -> list[dict]:
    """Rows {question, solution, gold, line} of a JSONL file (GSM8K format unless `row` parses
    another), with errors that name the file and line."""
    p = Path(os.path.expandvars(os.path.expanduser(str(path))))
    if not p.is_file():
        raise TaskDataError(f"Task data file not found: {p} (set {option}= to a JSONL file with one "
                            f"{example} object a line)")
    rows = []
    with p.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as e:
                raise TaskDataError(f"{path} line {lineno}: not valid JSON ({e.msg} at column {e.colno})") from None
            rows.append({**row(raw, f"{path} line {lineno}"), "line": lineno})
    if not rows:
        raise TaskDataError(f"{path}: no problems in the file ({option})")
    return rows


def load_hf_split(name: str, config: str, split: str, row=_row) -> list[dict]:
    try:
        from datasets import load_dataset

        ds = load_dataset(name, config, split=split)
    except Exception as e:  # network, offline cache miss, unknown name...
        offline = any(os.environ.get(v, "").lower() in ("1", "true", "yes", "on")
                      for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))
        why = " HF_HUB_OFFLINE/HF_DATASETS_OFFLINE is set and it is not in the local cache." if offline else ""
        raise TaskDataError(
            f"Could not load the Hugging Face dataset '{name}' (config '{config}', split '{split}'): "
            f"{type(e).__name__}: {e}.{why} Set task.train_path and task.test_path to local GSM8K-format "
            f"JSONL files instead.") from e
    return [{**row(dict(raw), f"{name}[{split}] row {i}"), "line": i} for i, raw in enumerate(ds)]


@register_task("gsm8k")
class GSM8K(CorrectionTask):
    row = staticmethod(_row)  # parses and checks one raw record of the data files
    row_example = '{"question": ..., "answer": "... #### N"}'

    def __init__(self, cfg):
        self.cfg = cfg
        self._cache: dict[str, list[dict]] = {}
        self._exemplars: Optional[list[dict]] = None
        self._train_by_line: Optional[dict[int, dict]] = None

    # -- loading
    def _source(self, split: str) -> list[dict]:
        if split not in self._cache:
            c = self.cfg
            path = getattr(c, f"{split}_path", None)
            if c.train_path is None and c.test_path is None:
                if not getattr(c, "hf_dataset", None):
                    raise TaskDataError("The gsm8k task needs data: set task.train_path and task.test_path to "
                                     "GSM8K-format JSONL files, or task.hf_dataset (e.g. openai/gsm8k).")
                self._cache[split] = load_hf_split(c.hf_dataset, getattr(c, "hf_config", "main"), split, self.row)
            elif path is None:
                raise TaskDataError(f"task.{split}_path is not set: set both task.train_path and task.test_path "
                                 f"(or neither, to load task.hf_dataset).")
            else:
                self._cache[split] = read_gsm8k_jsonl(path, f"task.{split}_path", self.row, self.row_example)
        return self._cache[split]

    def _problem(self, row: dict, split: str, with_solution: bool) -> dict:
        worked = strip_annotations(row["solution"]).strip()
        steps = [ln for ln in worked.split("####")[0].split("\n") if ln.strip()]
        p = {"id": f"{split}-{row['line']}", "question": row["question"], "answer": row["gold"],
             "difficulty": len(steps)}
        if with_solution:
            p["solution"] = " " + worked
        return p

    def _plan(self) -> tuple[list[int], list[int], list[int]]:
        c = self.cfg
        rows = self._source("train")
        k, v = int(c.num_fewshot), int(c.val_size)
        if k < 0 or v < 0:
            raise TaskDataError(f"task.num_fewshot and task.val_size must be >= 0 (got {k}, {v}).")
        if k + v >= len(rows):
            raise TaskDataError(f"task.num_fewshot ({k}) + task.val_size ({v}) leave no training problems "
                             f"out of {len(rows)}.")
        order = list(range(len(rows)))
        random.Random(c.data_seed).shuffle(order)
        rest = order[k + v:]
        if c.train_size is not None:
            rest = rest[: int(c.train_size)]  # a seeded random subset
        return order[:k], sorted(order[k:k + v]), sorted(rest)

    def exemplars(self) -> list[dict]:
        """The few-shot exemplars (= the seed split), with annotation-free worked solutions."""
        if self._exemplars is None:
            rows = self._source("train")
            self._exemplars = [self._problem(rows[i], "train", True) for i in self._plan()[0]]
        return self._exemplars

    def gold_solution(self, problem: dict) -> Optional[str]:
        """GSM8K's answers are worked solutions: a training problem's is the one in its data file,
        in the exemplars' format (annotations stripped), so the gold-SFT control can train on any
        training problem. None for the test split (for reporting only)."""
        if problem.get("solution"):
            return problem["solution"]
        split, _, line = str(problem.get("id", "")).partition("-")
        if split != "train" or not line.isdigit():
            return None
        if self._train_by_line is None:  # built once: the stage asks for every drawn problem
            self._train_by_line = {r["line"]: r for r in self._source("train")}
        row = self._train_by_line.get(int(line))
        return None if row is None else self._problem(row, "train", True)["solution"]

    def splits(self) -> dict[str, list[dict]]:
        c = self.cfg
        train_rows, test_rows = self._source("train"), self._source("test")
        seed, val, train = self._plan()
        test = list(range(len(test_rows)))
        if c.test_size is not None and int(c.test_size) < len(test):
            test = sorted(random.Random(c.data_seed + 1).sample(test, int(c.test_size)))
        return {
            "train": [self._problem(train_rows[i], "train", False) for i in train],
            "val": [self._problem(train_rows[i], "train", False) for i in val],
            "test": [self._problem(test_rows[i], "test", False) for i in test],
            "seed": self.exemplars(),
        }

    # -- prompting and checking
    @staticmethod
    def _qa(problem: dict, hint: bool) -> str:
        hinted = f" ({problem['answer']})" if hint else ""
        return f"Q: {problem['question']}{hinted}\nA:"

    def _shots(self, hint: bool) -> str:
        if not getattr(self.cfg, "fewshot", False):
            return ""
        return "".join(f"{self._qa(e, hint)}{e['solution']}\n\n" for e in self.exemplars())

    def prompt(self, problem: dict, hint: bool = False) -> str:
        return self._shots(hint) + self._qa(problem, hint)

    def without_exemplars(self, prompt: str) -> str:
        shots = self._shots(hint=False)
        return prompt[len(shots):] if shots and prompt.startswith(shots) else prompt

    def extract_answer(self, text: str) -> Optional[str]:
        return extract(text)

    def truncate(self, text: str) -> str:
        return truncate(text)

    def reward(self, text: str, problem: dict) -> float:
        try:
            gold = normalize_answer(problem["answer"])
            return float(answers_equal(extract(text, problem.get("question")), gold))
        except Exception:
            return 0.0

