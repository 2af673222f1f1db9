"""Judge quality (the paper's Table 4 pairwise accuracy): the policy judges a fixed held-out set
of (correct, incorrect) responses with the same judge settings as the `judge` stage; a pair
counts as agreement when the correct response gets the strictly higher average score (ties
and unscored responses count as disagreement, and are reported separately)."""
from __future__ import annotations

from ..metrics import mean
from ..rundir import read_jsonl, write_jsonl
from .judge import judge_all, judgment_metrics
from . import StageContext, StageResult, register_stage


@register_stage("judge_quality", inputs=lambda cfg: {"model": "policy", "problems": cfg.split})
def judge_quality(ctx: StageContext) -> StageResult:
    c, task = ctx.cfg, ctx.task
    problems = read_jsonl(ctx.inputs["problems"])[: c.max_pairs]
    pairs = task.judge_pairs(problems, seed=0)  # the same pairs in every iteration
    if not pairs:
        return StageResult({}, {"pairs": 0})
    items = [(task.prompt({"question": p["question"]}), resp) for p in pairs for resp in (p["good"], p["bad"])]
    with ctx.sampler(ctx.inputs["model"]) as sampler:
        results = judge_all(ctx, sampler, items, "judging held-out pairs")
    rows = []
    for i, p in enumerate(pairs):
        good, bad = results[2 * i], results[2 * i + 1]
        agree = good["score"] is not None and bad["score"] is not None and good["score"] > bad["score"]
        rows.append({**p, "good_score": good["score"], "bad_score": bad["score"], "agree": agree,
                     "good_judgments": good["judgments"], "bad_judgments": bad["judgments"]})
    write_jsonl(ctx.out / "judge_pairs.jsonl", rows)
    both = [r for r in rows if r["good_score"] is not None and r["bad_score"] is not None]
    metrics = {"pairs": len(rows), "pairwise_accuracy": round(mean([float(r["agree"]) for r in rows]), 4),
               "pair_ties": round(mean([float(r["good_score"] == r["bad_score"]) for r in both]), 4) if both else None,
               "mean_score_good": round(mean([r["good_score"] for r in both]), 4) if both else None,
               "mean_score_bad": round(mean([r["bad_score"] for r in both]), 4) if both else None,
               **{k: v for k, v in judgment_metrics(results).items() if k.startswith("unparseable")}}
    return StageResult({"judge_quality": "judge_pairs.jsonl"}, metrics)
