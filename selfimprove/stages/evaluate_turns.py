"""Two-turn held-out evaluation (SCoRe's table columns): greedy first attempt, then the fixed
correction instruction, then a greedy second attempt. Gold answers are used for scoring only;
the model is never told whether its first attempt was right."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..backends import SamplingParams
from ..errors import Problems
from ..metrics import mean
from ..tasks import has_second_turn, second_turn_missing
from ..rundir import write_jsonl
from ..sampling import run_sampler, sample_problems
from . import StageContext, StageResult, register_stage


@dataclass
class TurnsEvalConfig:
    """Two-turn held-out evaluation, greedy as in the paper: Acc@t1, Acc@t2, Δ(t1,t2), Δ i→c, Δ c→i."""

    # it reports on the test split: an objective (what a sweep maximises) must read this instead
    VAL_OBJECTIVE = "val_acc_t2"  # not annotated: a class constant, not a config key
    kind: str = "evaluate_turns"
    enabled: bool = True
    split: str = "test"  # reported only
    max_problems: Optional[int] = None
    # also two turns on this split -> val_acc_t1, val_acc_t2, val_delta (what choices read); null: skip
    val_split: Optional[str] = "val"
    val_max_problems: Optional[int] = None
    max_new_tokens: int = 64

    @staticmethod
    def check(name: str, s, cfg) -> list[str]:
        p = Problems()
        p.need(has_second_turn(cfg.task), second_turn_missing(name, cfg))
        return p


def turn_metrics(first: list[bool], second: list[bool]) -> dict:
    """Acc@t1, Acc@t2, Δ(t1,t2) = Acc@t2 - Acc@t1, Δ i→c (wrong then right) and Δ c→i (right then
    wrong), all as fractions of the problems; Δ = Δ i→c - Δ c→i."""
    if len(first) != len(second):
        raise ValueError(f"one outcome per turn per problem (got {len(first)} and {len(second)})")
    return {
        "acc_t1": round(mean([float(a) for a in first]), 4),
        "acc_t2": round(mean([float(b) for b in second]), 4),
        "delta": round(mean([float(b) - float(a) for a, b in zip(first, second)]), 4),
        "delta_i2c": round(mean([float(not a and b) for a, b in zip(first, second)]), 4),
        "delta_c2i": round(mean([float(a and not b) for a, b in zip(first, second)]), 4),
    }


def _inputs(cfg) -> dict:
    val = {"val": f"{cfg.val_split}?"} if cfg.get("val_split") else {}  # optional: a task may have no val split
    return {"model": "policy", "problems": cfg.split, **val}


def _episodes(ctx: StageContext, sampler, problems: list[dict], tag: str) -> tuple[list[dict], dict]:
    """Greedy turn 1, the correction instruction, greedy turn 2; (one row per problem, turn 1's speed)."""
    task, greedy = ctx.task, SamplingParams(n=1, max_new_tokens=ctx.cfg.max_new_tokens, seed=ctx.seed)
    first, speed = run_sampler(ctx, sampler, [task.prompt(p) for p in problems], greedy, f"{tag}turn 1")
    first = [texts[0] for texts in first]
    chat = bool(ctx.model_cfg.chat_template)  # the second turn as a conversation in the chat template
    second, _ = run_sampler(ctx, sampler, [task.turn2(p, y1, chat) for p, y1 in zip(problems, first)],
                            greedy, f"{tag}turn 2")
    rows = []
    for p, y1, (y2,) in zip(problems, first, second):
        a1, a2 = task.extract_answer(y1), task.extract_answer(y2)
        rows.append({"prompt_id": p["id"], "difficulty": p.get("difficulty"), "gold": p["answer"],
                     "turn1": y1, "turn2": y2, "answer1": a1, "answer2": a2,
                     "correct1": task.reward(y1, p) >= 1, "correct2": task.reward(y2, p) >= 1})
    return rows, speed


@register_stage("evaluate_turns", inputs=_inputs, schema=TurnsEvalConfig)
def evaluate_turns(ctx: StageContext) -> StageResult:
    """`split` (test) is reported; `val_split` gives the `val_*` columns that choices read."""
    c = ctx.cfg
    problems = sample_problems(ctx, ctx.inputs["problems"], c.max_problems)
    val = sample_problems(ctx, ctx.inputs["val"], c.val_max_problems) if ctx.inputs.get("val") else []
    artifacts = {"turns": "turns.jsonl"}
    with ctx.sampler(ctx.inputs["model"]) as sampler:
        rows, speed = _episodes(ctx, sampler, problems, "")
        val_rows = _episodes(ctx, sampler, val, "val ")[0] if val else []
    write_jsonl(ctx.out / "turns.jsonl", rows)
    metrics = turn_metrics([r["correct1"] for r in rows], [r["correct2"] for r in rows])
    # the paper's diagnostic of behaviour collapse: how often turn 2 changes the answer at all
    metrics["changed_answer"] = round(mean([float(r["answer1"] != r["answer2"]) for r in rows]), 4)
    metrics.update(problems=len(rows), **speed)
    if val_rows:
        write_jsonl(ctx.out / "val_turns.jsonl", val_rows)
        artifacts["val_turns"] = "val_turns.jsonl"
        vm = turn_metrics([r["correct1"] for r in val_rows], [r["correct2"] for r in val_rows])
        metrics.update({f"val_{k}": vm[k] for k in ("acc_t1", "acc_t2", "delta")}, val_problems=len(val_rows))
    return StageResult(artifacts, metrics)
