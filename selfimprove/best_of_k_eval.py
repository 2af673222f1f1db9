"""Best-of-k evaluation for the evaluate stage (V-STaR's inference): every sampled candidate of
every problem is scored once by the verifier, then exact subset estimators over the n candidates
give, per k: majority@k (self-consistency), verifier@k (return the verifier's top candidate of k,
the paper's Eq. 3) and oracle@k (= pass@k, the ceiling); plus pass@1 of the generator and the
verifier's accuracy on the held-out (correct, incorrect) pairs of each test problem. The same
on the validation split's candidates, as `val_*` metrics: what a choice of verifier settings
reads (the test numbers are for reporting). Without a verifier in this iteration only the
generator's metrics are reported.
"""
from __future__ import annotations

from collections import defaultdict

from .bestofk import best_of_k, majority_at_k, pairwise_accuracy
from .metrics import answer_clusters, gold_cluster, mean, pass_at_k
from .rundir import read_jsonl, write_jsonl
from .context import StageContext, StageResult
from .errors import StageError


def roles(cfg) -> dict[str, str]:
    """The evaluate stage's extra inputs: this iteration's verifier, if one was trained."""
    b = cfg.best_of
    if not (b.enabled and b.verifier):
        return {}
    return {"verifier": f"{b.verifier}?"} | ({"reference": f"{b.reference}?"} if b.score == "implicit_reward" else {})


def candidate_metrics(groups: list[list[dict]], ks, with_scores: bool, same=lambda a, b: a == b) -> dict:
    """Estimators over each problem's candidates (rows with correct, answer, and with
    verifier_score when `with_scores`), averaged over problems. Majority voting groups answers by
    the task's equivalence `same` and is right when the checker accepted the winning answer."""
    out = {"pass@1": round(mean([pass_at_k(len(g), sum(r["correct"] for r in g), 1) for g in groups]), 4)}
    clusters = [answer_clusters([r["answer"] for r in g], same) for g in groups]
    golds = [gold_cluster(cl, [r["correct"] for r in g]) for cl, g in zip(clusters, groups)]
    for k in ks:
        out[f"majority@{k}"] = round(mean([majority_at_k(cl, gold, k) for cl, gold in zip(clusters, golds)]), 4)
        if with_scores:
            out[f"verifier@{k}"] = round(mean([best_of_k([r["verifier_score"] for r in g],
                                                         [r["correct"] for r in g], k) for g in groups]), 4)
        out[f"oracle@{k}"] = round(mean([pass_at_k(len(g), sum(r["correct"] for r in g), k) for g in groups]), 4)
    if with_scores:
        wins = pairs = 0.0
        for g in groups:
            w, n = pairwise_accuracy([r["verifier_score"] for r in g], [r["correct"] for r in g])
            wins, pairs = wins + w, pairs + n
        out["verifier_pair_accuracy"] = round(wins / pairs, 4) if pairs else None
        out["verifier_heldout_pairs"] = int(pairs)
    return out


def add_best_of_k(ctx: StageContext, result: StageResult, problems: list[dict]) -> StageResult:
    """Score the candidates that `evaluate` sampled and wrote to eval.jsonl (and val_eval.jsonl),
    all in one pass of the verifier, add the scores to those rows and the Best-of-k metrics
    (`val_` ones for the validation candidates) to the result."""
    from .verifier import verifier_scores

    b = ctx.cfg.best_of
    files = {prefix: ctx.out / result.artifacts[name]
             for prefix, name in (("", "eval"), ("val_", "val_eval")) if name in result.artifacts}
    rows = {prefix: read_jsonl(path) for prefix, path in files.items()}
    candidates = {prefix: [r for r in rs if r["mode"] == "sample"] for prefix, rs in rows.items()}
    every = [r for cs in candidates.values() for r in cs]
    verifier = ctx.inputs.get("verifier")
    if verifier:
        reference = ctx.inputs.get("reference")
        if b.score == "implicit_reward" and not reference:
            raise StageError(f"{ctx.name}.best_of.score=implicit_reward needs the DPO reference model "
                             f"'{b.reference}', which this run does not have; set {ctx.name}.best_of.reference to "
                             "the verifier's init artifact (base) or use best_of.score=logprob.")
        prompts = {p["id"]: ctx.task.prompt(p) for p in problems}
        with ctx.ui.progress(f"{ctx.name}: verifier scores", total=len(every)) as advance:
            scores = verifier_scores(b, ctx.model_cfg, ctx.device, verifier, reference,
                                     [prompts[r["prompt_id"]] for r in every], [r["text"] for r in every])
            advance(len(every))
        for r, s in zip(every, scores):
            r["verifier_score"] = s
        for prefix, path in files.items():
            write_jsonl(path, rows[prefix])
    for prefix, cs in candidates.items():
        if not cs:
            continue
        groups: dict[str, list[dict]] = defaultdict(list)
        for r in cs:
            groups[r["prompt_id"]].append(r)
        got = candidate_metrics(list(groups.values()), list(b.k), verifier is not None, ctx.task.same_answer)
        result.metrics.update({prefix + k: v for k, v in got.items()})
    return result
