"""Score samples with a reward. Scorers are pure functions over records, registered by name:
each gets the sample rows, the problems by id and the task, and returns one reward per row
(None = could not score)."""
from __future__ import annotations

from collections import defaultdict
from typing import Callable, Optional

from ..metrics import mean
from ..rundir import read_jsonl, write_jsonl
from . import StageContext, StageResult, register_stage

SCORERS: dict[str, Callable[[list[dict], dict[str, dict], object], list[Optional[float]]]] = {}


def scorer(name: str):
    def deco(fn):
        if name in SCORERS:
            raise ValueError(f"scorer '{name}' registered twice")
        SCORERS[name] = fn
        return fn

    return deco


@scorer("answer_match")
def answer_match(rows, problems, task):
    """Binary reward: the final answer equals the gold answer (STaR, ReST-EM, V-STaR)."""
    return [task.reward(r["text"], problems[r["prompt_id"]]) for r in rows]


def exploration_metrics(rows: list[dict]) -> dict:
    """How much the samples explore: mean reward and the share of problems with a correct sample."""
    by_problem: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        by_problem[r["prompt_id"]].append(r["reward"] or 0.0)
    return {
        "mean_reward": round(mean([r["reward"] or 0.0 for r in rows]), 4),
        "solved_fraction": round(mean([float(max(v) >= 1) for v in by_problem.values()]), 4),
    }


@register_stage("score", inputs=lambda cfg: {"samples": "samples", "problems": "train"})
def score(ctx: StageContext) -> StageResult:
    if ctx.cfg.scorer not in SCORERS:
        raise ValueError(f"Unknown scorer '{ctx.cfg.scorer}'. Available: {', '.join(sorted(SCORERS))}.")
    rows = read_jsonl(ctx.inputs["samples"])
    problems = {p["id"]: p for p in read_jsonl(ctx.inputs["problems"])}
    rewards = SCORERS[ctx.cfg.scorer](rows, problems, ctx.task)
    for r, reward in zip(rows, rewards):
        r["answer"] = ctx.task.extract_answer(r["text"])
        r["reward"] = reward
    write_jsonl(ctx.out / "scored.jsonl", rows)
    unscored = sum(r is None for r in rewards)
    return StageResult({"scored": "scored.jsonl"}, {**exploration_metrics(rows), "unscored": unscored})
