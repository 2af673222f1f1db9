"""Held-out evaluation: greedy accuracy (overall and per difficulty) and, from `num_samples`
sampled completions per problem, unbiased pass@k and maj@k. Gold answers are used here only.

`split` (test) is for reporting. `val_split` is also scored greedily (`val_accuracy`, rows in
val_eval.jsonl): sweeps and any other choice read that, never the test numbers."""
from __future__ import annotations

from collections import defaultdict

from ..backends import SamplingParams
from ..metrics import answer_clusters, gold_cluster, majority, mean, pass_at_k
from ..rundir import write_jsonl
from .generate import run_sampler, sample_problems
from . import StageContext, StageResult, best_of_k, register_stage


def sampled_metrics(correct: list[list[bool]], answers: list[list], same, ks) -> dict:
    """pass@k (unbiased estimator over n samples) and maj@k (majority of the first k samples, answers
    grouped by the task's own equivalence `same`, right when the checker accepts the winner)."""
    clusters = [answer_clusters(a, same) for a in answers]
    golds = [gold_cluster(cl, c) for cl, c in zip(clusters, correct)]
    out = {}
    for k in ks:
        out[f"pass@{k}"] = round(mean([pass_at_k(len(c), sum(c), k) for c in correct]), 4)
        out[f"maj@{k}"] = round(mean([float(majority(cl[:k]) == g) for cl, g in zip(clusters, golds)]), 4)
    return out


def _inputs(cfg) -> dict:
    val = {"val": f"{cfg.val_split}?"} if cfg.get("val_split") else {}  # optional: a task may have no val split
    return {"model": "policy", "problems": cfg.split, **val, **best_of_k.roles(cfg)}


@register_stage("evaluate", inputs=_inputs)
def evaluate(ctx: StageContext) -> StageResult:
    c, task = ctx.cfg, ctx.task
    problems = sample_problems(ctx, ctx.inputs["problems"], c.max_problems)
    prompts = [task.prompt(p) for p in problems]
    with ctx.sampler(ctx.inputs["model"]) as sampler:
        result = _evaluate(ctx, sampler, problems, prompts)
        _validation(ctx, sampler, result)
    if c.best_of.enabled:  # V-STaR: rank the sampled candidates with the verifier (after the sampler is freed)
        result = best_of_k.add_best_of_k(ctx, result, problems)
    return result


def _evaluate(ctx: StageContext, sampler, problems: list[dict], prompts: list[str]) -> StageResult:
    c, task = ctx.cfg, ctx.task
    if problems and all(p.get("answer") is None for p in problems):  # prompts without gold (task=prompts)
        return _lengths_only(ctx, sampler, problems, prompts)
    greedy, speed = run_sampler(ctx, sampler, prompts,
                                SamplingParams(n=1, max_new_tokens=c.max_new_tokens, seed=ctx.seed), "greedy eval")
    rows, by_diff = [], defaultdict(list)
    for p, (text,) in zip(problems, greedy):
        ok = task.reward(text, p) >= 1
        by_diff[p.get("difficulty")].append(ok)
        rows.append({"prompt_id": p["id"], "difficulty": p.get("difficulty"), "mode": "greedy", "text": text,
                     "answer": task.extract_answer(text), "gold": p["answer"], "correct": ok})
    metrics = {"accuracy": round(mean([r["correct"] for r in rows]), 4), "problems": len(problems),
               **{f"accuracy_d{d}": round(mean(v), 4) for d, v in sorted(by_diff.items()) if d is not None},
               "mean_chars": round(mean([len(r["text"]) for r in rows]), 1), **speed}
    if c.num_samples > 0:
        params = SamplingParams(n=c.num_samples, temperature=c.temperature, top_p=c.top_p,
                                max_new_tokens=c.max_new_tokens, seed=ctx.seed + 1)
        sampled, _ = run_sampler(ctx, sampler, prompts, params, f"{c.num_samples} samples")
        correct = [[task.reward(t, p) >= 1 for t in texts] for p, texts in zip(problems, sampled)]
        answers = [[task.extract_answer(t) for t in texts] for texts in sampled]
        metrics.update(sampled_metrics(correct, answers, task.same_answer, c.pass_k))
        rows += [{"prompt_id": p["id"], "difficulty": p.get("difficulty"), "mode": "sample", "sample_id": j,
                  "text": t, "answer": a, "gold": p["answer"], "correct": ok}
                 for p, texts, anss, oks in zip(problems, sampled, answers, correct)
                 for j, (t, a, ok) in enumerate(zip(texts, anss, oks))]
    write_jsonl(ctx.out / "eval.jsonl", rows)
    return StageResult({"eval": "eval.jsonl"}, metrics)


def _validation(ctx: StageContext, sampler, result: StageResult) -> None:
    """Greedy accuracy on the validation split, added to `result` (nothing if the task has no
    val split or its val problems carry no gold answer)."""
    path = ctx.inputs.get("val")
    problems = sample_problems(ctx, path, ctx.cfg.val_max_problems) if path else []
    if not problems or any(p.get("answer") is None for p in problems):
        return
    greedy, _ = run_sampler(ctx, sampler, [ctx.task.prompt(p) for p in problems],
                            SamplingParams(n=1, max_new_tokens=ctx.cfg.max_new_tokens, seed=ctx.seed), "val greedy")
    rows = [{"prompt_id": p["id"], "difficulty": p.get("difficulty"), "mode": "greedy", "text": text,
             "answer": ctx.task.extract_answer(text), "gold": p["answer"], "correct": ctx.task.reward(text, p) >= 1}
            for p, (text,) in zip(problems, greedy)]
    write_jsonl(ctx.out / "val_eval.jsonl", rows)
    result.artifacts["val_eval"] = "val_eval.jsonl"
    result.metrics.update({"val_accuracy": round(mean([r["correct"] for r in rows]), 4), "val_problems": len(rows)})


def _lengths_only(ctx: StageContext, sampler, problems: list[dict], prompts: list[str]) -> StageResult:
    """No gold answers: no accuracy, only the greedy responses and their length."""
    greedy, speed = run_sampler(ctx, sampler, prompts,
                                SamplingParams(n=1, max_new_tokens=ctx.cfg.max_new_tokens, seed=ctx.seed), "greedy eval")
    rows = [{"prompt_id": p["id"], "mode": "greedy", "text": text} for p, (text,) in zip(problems, greedy)]
    write_jsonl(ctx.out / "eval.jsonl", rows)
    return StageResult({"eval": "eval.jsonl"}, {"problems": len(problems), "mean_chars": round(
        mean([len(r["text"]) for r in rows]), 1), **speed})
