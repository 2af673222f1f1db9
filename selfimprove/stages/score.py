"""Score samples with a reward, and report B-STaR's exploration/exploitation monitors.

Scorers are pure functions over records, registered by name: each gets the sample rows grouped
by problem and the task, and returns one reward per row (None = could not score). Gold answers
reach a scorer only if it asks for them (`answer_match`); `majority` (self-consistency) never
sees them. The monitors compare rewards with gold correctness for reporting only.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, List, Optional

from ..metrics import answer_clusters, majority, mean, pass_at_k
from ..registry import Registry
from ..rundir import read_jsonl, write_jsonl
from . import StageContext, StageResult, register_stage


@dataclass
class ScoreConfig:
    kind: str = "score"
    enabled: bool = True
    scorer: str = "answer_match"  # answer_match (gold) | majority (self-consistency, no gold)
    min_agreement: float = 0.5  # majority: share of samples that must agree on the pseudo-label
    # B-STaR monitors: the selection threshold they judge, pass@k on the samples, and n* of the
    # balance score (8 in the official code)
    threshold: float = "${oc.select:filter.min_reward,1.0}"  # type: ignore[assignment]
    pass_k: List[int] = field(default_factory=lambda: [1, 4])
    n_star: int = 8


# (rows, problems by id, task, cfg) -> one reward per row (None = could not score)
Scorer = Callable[[list[dict], dict[str, dict], object, object], list[Optional[float]]]
SCORERS: Registry[Scorer] = Registry("scorer")
scorer = SCORERS.register


@scorer("answer_match")
def answer_match(rows, problems, task, cfg):
    """Binary reward: the final answer equals the gold answer (STaR, ReST-EM, V-STaR)."""
    return [task.reward(r["text"], problems[r["prompt_id"]]) for r in rows]


@scorer("majority")
def majority_vote(rows, problems, task, cfg):
    """Self-consistency pseudo-labels, no gold: a sample is rewarded when its answer is its
    problem's majority answer and at least `min_agreement` of the samples agree on it."""
    index: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        index[r["prompt_id"]].append(i)
    rewards = [0.0] * len(rows)
    for members in index.values():  # answers grouped by the task's own equivalence, not by string
        clusters = answer_clusters([task.extract_answer(rows[i]["text"]) for i in members], task.same_answer)
        top = majority(clusters)
        if top is not None and sum(c == top for c in clusters) / len(clusters) >= cfg.min_agreement:
            for i, c in zip(members, clusters):
                rewards[i] = float(c == top)
    return rewards


def monitors(rows: list[dict], threshold: float, ks, n_star: int) -> dict:
    """B-STaR's monitors over one iteration's samples (each row has `reward` and gold `correct`).

    exploration: pass@k, share of problems with a correct sample, distinct correct texts per problem;
    exploitation: precision/recall of the selection (reward >= threshold) against gold correctness,
    and the balance score mean_i min(n'_i / n*, 1) * n'_i / n_i over problems (n_i distinct selected,
    n'_i of them correct; a problem with nothing selected scores 0)."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        groups[r["prompt_id"]].append(r)
    n = min((len(g) for g in groups.values()), default=0)
    out = {f"pass@{k}": round(mean([pass_at_k(len(g), sum(r["correct"] for r in g), k) for g in groups.values()]), 4)
           for k in ks if 1 <= k <= n}
    out["solved_fraction"] = round(mean([float(any(r["correct"] for r in g)) for g in groups.values()]), 4)
    out["distinct_correct"] = round(mean([len({r["text"] for r in g if r["correct"]}) for g in groups.values()]), 3)
    selected = [r for r in rows if r["reward"] is not None and r["reward"] >= threshold]
    correct = [r for r in rows if r["correct"]]
    out["selection_precision"] = round(mean([float(r["correct"]) for r in selected]), 4) if selected else 0.0
    out["selection_recall"] = round(sum(r["correct"] for r in selected) / len(correct), 4) if correct else 0.0
    balance = []
    for g in groups.values():
        chosen = {r["text"]: r for r in g if r["reward"] is not None and r["reward"] >= threshold}.values()
        good = sum(r["correct"] for r in chosen)
        balance.append(min(good / n_star, 1.0) * good / len(chosen) if chosen else 0.0)
    out["balance"] = round(mean(balance), 4)
    return out


@register_stage("score", inputs=lambda cfg: {"samples": "samples", "problems": "train"}, schema=ScoreConfig)
def score(ctx: StageContext) -> StageResult:
    c = ctx.cfg
    rows = read_jsonl(ctx.inputs["samples"])
    problems = {p["id"]: p for p in read_jsonl(ctx.inputs["problems"])}
    rewards = SCORERS.get_or_explain(c.scorer)(rows, problems, ctx.task, c)
    for r, reward in zip(rows, rewards):
        r["answer"] = ctx.task.extract_answer(r["text"])
        r["reward"] = reward
    write_jsonl(ctx.out / "scored.jsonl", rows)
    metrics = {"mean_reward": round(mean([r or 0.0 for r in rewards]), 4),
               "unscored": sum(r is None for r in rewards)}
    # Monitors need gold correctness; it is computed here for reporting and never written to the
    # scored rows that later stages read.
    judged = [{**r, "correct": ctx.task.reward(r["text"], problems[r["prompt_id"]]) >= 1} for r in rows]
    metrics.update(monitors(judged, c.threshold, c.pass_k, c.n_star))
    # For a scorer without gold (majority), how often its label was right: the share of problems
    # with a rewarded sample, and how many of those rewarded samples carry the gold answer.
    labelled = {r["prompt_id"]: r for r in judged if (r["reward"] or 0) >= 1}
    metrics["pseudo_labelled"] = round(len(labelled) / max(len({r["prompt_id"] for r in rows}), 1), 4)
    metrics["pseudo_label_accuracy"] = round(mean([float(r["correct"]) for r in labelled.values()]), 4)
    return StageResult({"scored": "scored.jsonl"}, metrics)
