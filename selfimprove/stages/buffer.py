"""Append this iteration's scored samples, correct or not, to V-STaR's verifier buffer D_VER.

The buffer of iteration t is the buffer of iteration t-1 plus iteration t's samples, written whole
as one dataset artifact per iteration: any iteration's buffer can be inspected, and a killed run
redoes at most this cheap append. With `include_seed`, the first buffer also holds the worked
seed examples as correct rows (the paper's D_VER and D_GEN both start from D_SFT); a filter with
`source: verifier_buffer` then selects the generator's accumulated training data from it.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from ..rundir import read_jsonl, write_jsonl
from . import StageContext, StageResult, register_stage


@dataclass
class BufferConfig:
    """V-STaR's verifier buffer D_VER: every scored sample, correct or not, appended each
    iteration to the previous iteration's buffer (one dataset artifact per iteration)."""

    kind: str = "buffer"
    enabled: bool = True
    output: str = "verifier_buffer"  # the artifact; it lives for the whole run
    # also hold the worked seed examples as correct rows, as D_GEN and D_VER start from D_SFT
    include_seed: bool = True


def _inputs(cfg) -> dict[str, str]:
    roles = {"scored": "scored", "previous": f"{cfg.output}?"}
    if cfg.include_seed:
        roles["seed"] = "seed?"
    return roles


def seed_rows(task, problems: list[dict]) -> list[dict]:
    """The worked examples as correct buffer rows, prompted exactly like generated samples."""
    return [{"prompt_id": p["id"], "sample_id": 0, "iteration": 0, "difficulty": p.get("difficulty"),
             "prompt": task.prompt(p), "text": p["solution"], "answer": task.extract_answer(p["solution"]),
             "reward": 1.0, "source": "seed"} for p in problems if p.get("solution")]


def summary(rows: list[dict]) -> dict:
    """Data yield of the buffer: what the verifier can contrast and the generator can learn from."""
    correct: dict[str, int] = defaultdict(int)
    incorrect: dict[str, int] = defaultdict(int)
    for r in rows:
        if r.get("reward") is None:
            continue
        (correct if r["reward"] >= 1 else incorrect)[r["prompt_id"]] += 1
    problems = set(correct) | set(incorrect)
    both = [p for p in problems if correct[p] and incorrect[p]]
    return {"rows": len(rows), "correct": sum(correct.values()), "incorrect": sum(incorrect.values()),
            "problems": len(problems), "problems_with_both": len(both),
            "unscored": sum(r.get("reward") is None for r in rows)}


@register_stage("buffer", inputs=_inputs, schema=BufferConfig)
def buffer(ctx: StageContext) -> StageResult:
    previous = ctx.inputs.get("previous")
    rows = read_jsonl(previous) if previous else []
    if not previous and ctx.inputs.get("seed"):
        rows += seed_rows(ctx.task, read_jsonl(ctx.inputs["seed"]))
    added = [{**r, "source": r.get("source", "generation")} for r in read_jsonl(ctx.inputs["scored"])]
    rows += added
    write_jsonl(ctx.out / "buffer.jsonl", rows)
    new = summary(added)
    return StageResult({ctx.cfg.output: "buffer.jsonl"},
                       {**summary(rows), "added": len(added), "added_correct": new["correct"],
                        "added_incorrect": new["incorrect"]})
