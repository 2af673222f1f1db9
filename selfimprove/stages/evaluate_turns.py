"""Two-turn held-out evaluation (SCoRe's table columns): greedy first attempt, then the fixed
correction instruction, then a greedy second attempt. Gold answers are used for scoring only;
the model is never told whether its first attempt was right."""
from __future__ import annotations

from ..backends import SamplingParams
from ..metrics import mean
from ..rundir import write_jsonl
from .generate import run_sampler, sample_problems
from . import StageContext, StageResult, register_stage


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


@register_stage("evaluate_turns", inputs=lambda cfg: {"model": "policy", "problems": cfg.split})
def evaluate_turns(ctx: StageContext) -> StageResult:
    c, task = ctx.cfg, ctx.task
    problems = sample_problems(ctx, ctx.inputs["problems"], c.max_problems)
    greedy = SamplingParams(n=1, max_new_tokens=c.max_new_tokens, seed=ctx.seed)
    with ctx.sampler(ctx.inputs["model"]) as sampler:
        first, speed = run_sampler(ctx, sampler, [task.prompt(p) for p in problems], greedy, "turn 1")
        first = [texts[0] for texts in first]
        second, _ = run_sampler(ctx, sampler, [task.turn2_prompt(p, y1) for p, y1 in zip(problems, first)],
                                greedy, "turn 2")
        second = [texts[0] for texts in second]
    rows = []
    for p, y1, y2 in zip(problems, first, second):
        a1, a2 = task.extract_answer(y1), task.extract_answer(y2)
        rows.append({"prompt_id": p["id"], "difficulty": p.get("difficulty"), "gold": p["answer"],
                     "turn1": y1, "turn2": y2, "answer1": a1, "answer2": a2,
                     "correct1": task.reward(y1, p) >= 1, "correct2": task.reward(y2, p) >= 1})
    write_jsonl(ctx.out / "turns.jsonl", rows)
    metrics = turn_metrics([r["correct1"] for r in rows], [r["correct2"] for r in rows])
    # the paper's diagnostic of behaviour collapse: how often turn 2 changes the answer at all
    metrics["changed_answer"] = round(mean([float(r["answer1"] != r["answer2"]) for r in rows]), 4)
    return StageResult({"turns": "turns.jsonl"}, {**metrics, "problems": len(rows), **speed})
