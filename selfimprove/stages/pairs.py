"""Preference pairs from self-judged candidates: per prompt, the highest-scored response is
chosen and the lowest-scored rejected (first in sample order among equals); prompts whose
scores are all equal (ties) are dropped, as are prompts with fewer than two scored distinct
responses and prompts whose candidates are all the same text (a DPO pair of one text teaches
nothing)."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import List

from ..metrics import mean
from ..rundir import read_jsonl, write_jsonl
from . import StageContext, StageError, StageResult, register_stage


@dataclass
class PairsConfig:
    """Highest- vs lowest-scored candidate per prompt; ties dropped."""

    kind: str = "pairs"
    enabled: bool = True
    # Drop pairs whose responses first differ at one of these step ends, e.g. [",", "\n"] for the
    # built-in task: one response stops (or closes a step) where the other goes on. Empty: keep
    # every pair, as in the paper. recipes/self_rewarding.yaml says why it drops them.
    drop_at_step_ends: List[str] = field(default_factory=list)


def build_pairs(rows: list[dict]) -> tuple[list[dict], dict]:
    """Pure: (pairs, counts) from judged rows (prompt_id, sample_id, prompt, text, score[, scores]).

    Candidates with the same text are one response: their parseable judgments are pooled into
    one average (short answers repeat often; a text must not be both chosen and rejected)."""
    groups: dict[str, dict[str, dict]] = defaultdict(dict)
    for r in sorted(rows, key=lambda r: r["sample_id"]):
        scores = [s for s in r.get("scores", [r.get("score")]) if s is not None]
        same = groups[r["prompt_id"]].setdefault(r["text"], {**r, "pooled": []})
        same["pooled"] += scores
    pairs, counts = [], {"prompts": len(groups), "too_few_scored": 0, "ties": 0, "identical": 0}
    for pid, by_text in groups.items():
        scored = [{**r, "score": sum(r["pooled"]) / len(r["pooled"])} for r in by_text.values() if r["pooled"]]
        if len(scored) < 2:
            # one distinct scored text: every candidate said the same thing, or too few were scored
            counts["identical" if len(scored) == 1 and len(by_text) == 1 else "too_few_scored"] += 1
            continue
        hi = max(scored, key=lambda r: r["score"])  # max/min return the first (lowest sample_id) of equals
        lo = min(scored, key=lambda r: r["score"])
        if hi["score"] == lo["score"]:
            counts["ties"] += 1
            continue
        pairs.append({"prompt_id": pid, "prompt": hi["prompt"], "chosen": hi["text"], "rejected": lo["text"],
                      "chosen_score": round(hi["score"], 4), "rejected_score": round(lo["score"], 4)})
    return pairs, counts


def differ_first_at_step_end(chosen: str, rejected: str, step_ends) -> bool:
    """Whether the two responses first differ where one of them ends a step (one of `step_ends`
    starts there): one stops, or closes its step, where the other goes on."""
    d = next((i for i, (a, b) in enumerate(zip(chosen, rejected)) if a != b), min(len(chosen), len(rejected)))
    return any(text.startswith(end, d) for text in (chosen, rejected) for end in step_ends)


@register_stage("pairs", inputs=lambda cfg: {"judged": "judged"}, schema=PairsConfig)
def pairs_stage(ctx: StageContext) -> StageResult:
    rows = read_jsonl(ctx.inputs["judged"])
    pairs, counts = build_pairs(rows)
    if ctx.cfg.drop_at_step_ends:
        kept = [p for p in pairs if not differ_first_at_step_end(p["chosen"], p["rejected"], ctx.cfg.drop_at_step_ends)]
        counts["dropped_at_step_end"] = len(pairs) - len(kept)
        pairs = kept
    judged = counts["prompts"] - counts["too_few_scored"]
    unparseable = sum(s is None for r in rows for s in r.get("scores", []))
    judgments = sum(len(r.get("scores", [])) for r in rows)
    metrics = {"pairs": len(pairs), **counts, "tie_fraction": round(counts["ties"] / max(judged, 1), 4),
               "unparseable_fraction": round(unparseable / max(judgments, 1), 4)}
    if not pairs:
        raise StageError(
            f"No preference pair survived iteration {ctx.iteration}: of {counts['prompts']} prompts, "
            f"{counts['ties']} had all candidates scored equal (ties), {counts['too_few_scored']} had fewer than two "
            f"scored candidates ({unparseable} of {judgments} judgments unparseable), {counts['identical']} had "
            f"identical best and worst texts, {counts.get('dropped_at_step_end', 0)} first differed at a step end "
            f"(pairs.drop_at_step_ends). More candidates per prompt (generate.k), a higher generate.temperature, "
            f"more judgments per candidate (judge.samples), or more EFT seed data (judge_seed.eft_per_problem) help.")
    metrics["chosen_score"] = round(mean([p["chosen_score"] for p in pairs]), 4)
    metrics["rejected_score"] = round(mean([p["rejected_score"] for p in pairs]), 4)
    # Reporting only, when the task can check an answer without stored gold (the built-in task can
    # add): how often the chosen / rejected response is actually right. Never used to build pairs.
    for side in ("chosen", "rejected"):
        verdicts = [ctx.task.oracle_correct(p["prompt"], p[side]) for p in pairs]
        if verdicts and None not in verdicts:
            metrics[f"gold_{side}_correct"] = round(mean([float(v) for v in verdicts]), 4)
    write_jsonl(ctx.out / "pairs.jsonl", pairs)
    return StageResult({"pairs": "pairs.jsonl"}, metrics)
