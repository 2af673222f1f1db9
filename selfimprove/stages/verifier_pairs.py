"""V-STaR's preference data: for each problem in the verifier buffer, correct x incorrect
solutions as prompt/chosen/rejected rows for the DPO verifier.

The paper takes the full Cartesian product; it grows as (correct x incorrect) per problem, so it
is capped per problem (`max_pairs_per_problem`, pairs drawn uniformly from the product) and the
cap is recorded in the metrics. Problems solved every time or never give no pair.
"""
from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from typing import Optional

from ..errors import Problems
from ..rundir import read_jsonl, write_jsonl
from . import StageContext, StageError, StageResult, register_stage


@dataclass
class VerifierPairsConfig:
    """Correct x incorrect solutions of the same problem, as prompt/chosen/rejected rows."""

    kind: str = "verifier_pairs"
    enabled: bool = True
    source: str = "verifier_buffer"
    min_reward: float = 1.0  # a sample is correct at or above this reward, incorrect below it
    # the Cartesian product per problem, capped (pairs drawn uniformly from it); null = no cap
    max_pairs_per_problem: Optional[int] = 64
    dedup: bool = True  # identical texts of one problem count once

    @staticmethod
    def check(name: str, s, cfg) -> list[str]:
        p = Problems()
        if s.max_pairs_per_problem is not None:
            p.need(s.max_pairs_per_problem >= 1, f"{name}.max_pairs_per_problem must be >= 1 or null for the full "
                                                 f"product (got {s.max_pairs_per_problem}).")
        return p


def build_pairs(rows: list[dict], min_reward: float, max_per_problem, dedup: bool, seed: int) -> list[dict]:
    """Pure: correct x incorrect pairs of the same problem, at most `max_per_problem` each.
    Unscored rows (reward None) are neither. Deterministic for a seed."""
    groups: dict[str, tuple[list[dict], list[dict]]] = defaultdict(lambda: ([], []))
    for r in rows:
        if r.get("reward") is not None:
            groups[r["prompt_id"]][0 if r["reward"] >= min_reward else 1].append(r)
    rng = random.Random(seed)
    pairs = []
    for pid in sorted(groups):
        good, bad = groups[pid]
        if dedup:
            good, bad = list({r["text"]: r for r in good}.values()), list({r["text"]: r for r in bad}.values())
        size = len(good) * len(bad)
        if not size:
            continue
        # an index into the product, so that a capped draw never builds the whole product
        picks = range(size) if max_per_problem is None or size <= max_per_problem else \
            sorted(rng.sample(range(size), max_per_problem))
        for i in picks:
            g, b = good[i // len(bad)], bad[i % len(bad)]
            pairs.append({"prompt_id": pid, "prompt": g["prompt"], "chosen": g["text"], "rejected": b["text"]})
    return pairs


@register_stage("verifier_pairs", inputs=lambda cfg: {"buffer": cfg.source}, schema=VerifierPairsConfig)
def verifier_pairs(ctx: StageContext) -> StageResult:
    c = ctx.cfg
    rows = read_jsonl(ctx.inputs["buffer"])
    pairs = build_pairs(rows, c.min_reward, c.max_pairs_per_problem, c.dedup, ctx.seed)
    correct = {r["prompt_id"] for r in rows if r.get("reward") is not None and r["reward"] >= c.min_reward}
    incorrect = {r["prompt_id"] for r in rows if r.get("reward") is not None and r["reward"] < c.min_reward}
    counts = {"buffer_rows": len(rows),
              "correct_samples": sum(r.get("reward") is not None and r["reward"] >= c.min_reward for r in rows),
              "incorrect_samples": sum(r.get("reward") is not None and r["reward"] < c.min_reward for r in rows),
              "problems": len(correct | incorrect), "problems_with_both": len(correct & incorrect)}
    if not pairs:
        shown = ", ".join(f"{k}={v}" for k, v in counts.items())
        missing = ("no incorrect sample" if not counts["incorrect_samples"] else
                   "no correct sample" if not counts["correct_samples"] else
                   "no problem with both a correct and an incorrect sample")
        raise StageError(
            f"No verifier pair in iteration {ctx.iteration}: the buffer {ctx.inputs['buffer']} has {missing}, so "
            f"the verifier has nothing to contrast ({shown}). Sample more per problem or more diversely "
            "(generate.k, generate.temperature), use harder training problems if everything is solved, or a "
            "stronger seed model (seed_sft.steps) if nothing is.")
    per_problem = defaultdict(int)
    for p in pairs:
        per_problem[p["prompt_id"]] += 1
    write_jsonl(ctx.out / "pairs.jsonl", pairs)
    return StageResult({"verifier_pairs": "pairs.jsonl"},
                       {"pairs": len(pairs), **counts, "max_pairs_per_problem": c.max_pairs_per_problem,
                        "problems_at_cap": sum(c.max_pairs_per_problem is not None and n == c.max_pairs_per_problem
                                               for n in per_problem.values())})
