"""Held-out evaluation: greedy accuracy (overall and per difficulty) and, from `num_samples`
sampled completions per problem, unbiased pass@k and maj@k. Gold answers are used here only.

`split` (test) is for reporting. `val_split` is also scored greedily (`val_accuracy`, rows in
val_eval.jsonl), and with Best-of-k its candidates are sampled and ranked too (`val_verifier@k`):
sweeps and any other choice read those, never the test numbers."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import List, Optional

from ..backends import SamplingParams
from ..errors import Problems
from ..metrics import answer_clusters, gold_cluster, majority, mean, pass_at_k
from ..rundir import write_jsonl
from ..sampling import run_sampler, sample_problems
from .. import best_of_k_eval as best_of_k
from . import StageContext, StageResult, register_stage


@dataclass
class BestOfKConfig:
    """Best-of-k evaluation: every sampled candidate is scored once by the verifier; from the n
    candidates, exact subset estimators give pass@1, majority@k, verifier@k (the top-scored of k)
    and oracle@k (= pass@k), plus the verifier's accuracy on held-out (correct, incorrect) pairs."""

    enabled: bool = False
    k: List[int] = field(default_factory=lambda: [4, 16])  # each needs k <= num_samples
    verifier: Optional[str] = None  # the verifier's artifact (e.g. `verifier`); null: generator metrics only
    # logprob: log V(y|x), the paper's score; mean_logprob: per token; implicit_reward: the DPO
    # reward log V(y|x) - log ref(y|x) with `reference` as ref (DPO's beta scales it, which
    # changes no ranking, so it is left out)
    score: str = "logprob"
    reference: str = "base"
    batch_size: int = 64  # sequences per verifier forward pass


@dataclass
class EvaluateConfig:
    # it reports on the test split: an objective (what a sweep maximises) must read this instead
    VAL_OBJECTIVE = "val_accuracy"  # not annotated: a class constant, not a config key
    kind: str = "evaluate"
    enabled: bool = True
    split: str = "test"  # reported only: nothing is chosen by it (choices read `val_split`)
    max_problems: Optional[int] = None
    # Also greedy on this split -> `val_accuracy`, the number sweeps (Optuna's objective) and any
    # other choice read, so the test split stays for reporting. null: skip (tasks without gold).
    val_split: Optional[str] = "val"
    val_max_problems: Optional[int] = None
    max_new_tokens: int = 128
    # pass@k / maj@k from `num_samples` sampled completions per problem (0 turns sampling off)
    num_samples: int = 4
    pass_k: List[int] = field(default_factory=lambda: [1, 4])
    temperature: float = 1.0
    top_p: float = 0.95
    # V-STaR: Best-of-k over the `num_samples` candidates, ranked by a verifier (see BestOfKConfig)
    best_of: BestOfKConfig = field(default_factory=lambda: BestOfKConfig())
    shards: int = 1  # as generate.shards

    @staticmethod
    def check(name: str, s, cfg) -> list[str]:
        p = Problems()
        if s.num_samples > 0:
            bad = [k for k in s.pass_k if k > s.num_samples or k < 1]
            p.need(not bad, f"{name}.pass_k has {bad} but only {name}.num_samples={s.num_samples} samples are drawn; "
                            f"raise {name}.num_samples to at least {max(s.pass_k)} or drop those k.")
        b = s.best_of
        if not b.enabled:
            return p
        big = [k for k in b.k if k > s.num_samples or k < 1]
        p.need(not big, f"{name}.best_of.k has {big} but only {name}.num_samples={s.num_samples} candidates are "
                        f"sampled per problem; raise {name}.num_samples to at least {max(b.k)} (the paper samples "
                        f"n >= k, e.g. 128 for k = 64) or drop those k.")
        p.need(b.score in ("logprob", "mean_logprob", "implicit_reward"),
               f"{name}.best_of.score must be logprob, mean_logprob or implicit_reward (got '{b.score}').")
        p.need(len(b.k) > 0, f"{name}.best_of.k is empty; list the k to report, e.g. {name}.best_of.k=[4,16].")
        p.need(b.batch_size >= 1, f"{name}.best_of.batch_size must be >= 1.")
        trained = {cfg[n].output for n in dict.fromkeys([*cfg.setup, *cfg.stages]) if cfg[n].kind == "dpo"}
        p.need(b.verifier is None or b.verifier in trained,
               f"{name}.best_of.verifier='{b.verifier}' but no dpo stage in the stage lists publishes it "
               f"(stages publish: {sorted(trained) or 'none'}); add the verifier stages (recipe=vstar) or set "
               f"{name}.best_of.verifier=null.")
        return p


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


@register_stage("evaluate", inputs=_inputs, schema=EvaluateConfig)
def evaluate(ctx: StageContext) -> StageResult:
    c, task = ctx.cfg, ctx.task
    problems = sample_problems(ctx, ctx.inputs["problems"], c.max_problems)
    prompts = [task.prompt(p) for p in problems]
    with ctx.sampler(ctx.inputs["model"]) as sampler:
        result = _evaluate(ctx, sampler, problems, prompts)
        val_problems = _validation(ctx, sampler, result)
    if c.best_of.enabled:  # V-STaR: rank the sampled candidates with the verifier (after the sampler is freed)
        result = best_of_k.add_best_of_k(ctx, result, problems + val_problems)
    return result


def _evaluate(ctx: StageContext, sampler, problems: list[dict], prompts: list[str]) -> StageResult:
    c, task = ctx.cfg, ctx.task
    if problems and all(p.get("answer") is None for p in problems):  # prompts without gold (task=prompts)
        return _lengths_only(ctx, sampler, problems, prompts)
    rows, speed = _greedy_rows(ctx, sampler, problems, prompts, "greedy eval")
    by_diff = defaultdict(list)
    for r in rows:
        by_diff[r["difficulty"]].append(r["correct"])
    metrics = {"accuracy": round(mean([r["correct"] for r in rows]), 4), "problems": len(problems),
               **{f"accuracy_d{d}": round(mean(v), 4) for d, v in sorted(by_diff.items()) if d is not None},
               "mean_chars": round(mean([len(r["text"]) for r in rows]), 1), **speed}
    if c.num_samples > 0:
        groups = _sampled_rows(ctx, sampler, problems, prompts, f"{c.num_samples} samples")
        metrics.update(sampled_metrics([[r["correct"] for r in g] for g in groups],
                                       [[r["answer"] for r in g] for g in groups], task.same_answer, c.pass_k))
        rows += [r for g in groups for r in g]
    write_jsonl(ctx.out / "eval.jsonl", rows)
    return StageResult({"eval": "eval.jsonl"}, metrics)


def _greedy_rows(ctx: StageContext, sampler, problems: list[dict], prompts: list[str], label: str):
    """One greedy completion per problem, graded: (eval rows, sampling speed)."""
    task = ctx.task
    greedy, speed = run_sampler(ctx, sampler, prompts,
                                SamplingParams(n=1, max_new_tokens=ctx.cfg.max_new_tokens, seed=ctx.seed), label)
    return [{"prompt_id": p["id"], "difficulty": p.get("difficulty"), "mode": "greedy", "text": text,
             "answer": task.extract_answer(text), "gold": p["answer"], "correct": task.reward(text, p) >= 1}
            for p, (text,) in zip(problems, greedy)], speed


def _sampled_rows(ctx: StageContext, sampler, problems: list[dict], prompts: list[str], label: str) -> list[list[dict]]:
    """`num_samples` sampled completions per problem, graded: one list of eval rows per problem."""
    c, task = ctx.cfg, ctx.task
    params = SamplingParams(n=c.num_samples, temperature=c.temperature, top_p=c.top_p,
                            max_new_tokens=c.max_new_tokens, seed=ctx.seed + 1)
    sampled, _ = run_sampler(ctx, sampler, prompts, params, label)
    return [[{"prompt_id": p["id"], "difficulty": p.get("difficulty"), "mode": "sample", "sample_id": j, "text": t,
              "answer": task.extract_answer(t), "gold": p["answer"], "correct": task.reward(t, p) >= 1}
             for j, t in enumerate(texts)] for p, texts in zip(problems, sampled)]


def _validation(ctx: StageContext, sampler, result: StageResult) -> list[dict]:
    """Greedy accuracy on the validation split, added to `result`, and with a verifier to rank
    them also the sampled candidates (rows in val_eval.jsonl). Returns the val problems (none if
    the task has no val split or its val problems carry no gold answer)."""
    c, task = ctx.cfg, ctx.task
    path = ctx.inputs.get("val")
    problems = sample_problems(ctx, path, c.val_max_problems) if path else []
    if not problems or any(p.get("answer") is None for p in problems):
        return []
    prompts = [task.prompt(p) for p in problems]
    rows, _ = _greedy_rows(ctx, sampler, problems, prompts, "val greedy")
    result.metrics.update({"val_accuracy": round(mean([r["correct"] for r in rows]), 4), "val_problems": len(rows)})
    if c.best_of.enabled and c.num_samples > 0 and ctx.inputs.get("verifier"):  # only a verifier's settings are chosen here
        rows += [r for g in _sampled_rows(ctx, sampler, problems, prompts, f"val {c.num_samples} samples") for r in g]
    write_jsonl(ctx.out / "val_eval.jsonl", rows)
    result.artifacts["val_eval"] = "val_eval.jsonl"
    return problems


def _lengths_only(ctx: StageContext, sampler, problems: list[dict], prompts: list[str]) -> StageResult:
    """No gold answers: no accuracy, only the greedy responses and their length."""
    greedy, speed = run_sampler(ctx, sampler, prompts,
                                SamplingParams(n=1, max_new_tokens=ctx.cfg.max_new_tokens, seed=ctx.seed), "greedy eval")
    rows = [{"prompt_id": p["id"], "mode": "greedy", "text": text} for p, (text,) in zip(problems, greedy)]
    write_jsonl(ctx.out / "eval.jsonl", rows)
    return StageResult({"eval": "eval.jsonl"}, {"problems": len(problems), "mean_chars": round(
        mean([len(r["text"]) for r in rows]), 1), **speed})
