"""Keep samples whose reward reaches `min_reward`, deduplicated and capped per problem, as
prompt/completion rows for SFT. Rationalized samples (if the stage ran) join the pool."""
from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from typing import Optional

from ..errors import Problems
from ..rundir import read_jsonl, write_jsonl
from . import StageContext, StageError, StageResult, register_stage
from .generate import tuned


@dataclass
class FilterConfig:
    kind: str = "filter"
    enabled: bool = True
    min_reward: float = 1.0
    max_per_problem: Optional[int] = None  # cap on kept samples per problem; null = no cap
    dedup: bool = True  # drop identical texts for one problem before capping
    # the scored rows to select from: this iteration's `scored`, or V-STaR's `verifier_buffer`
    # (every sample of every iteration so far: STaR-style accumulation, nothing discarded)
    source: str = "scored"
    # keep the task's few-shot exemplars in the training prompts. STaR's code leaves them out unless
    # --few_shot_train (recipes/star.yaml); ReST-EM trains on the few-shot prompt. Tasks without
    # exemplars (the built-in addition) are unaffected.
    fewshot_exemplars: bool = True

    @staticmethod
    def check(name: str, s, cfg) -> list[str]:
        p = Problems()
        if s.max_per_problem is not None:
            p.need(s.max_per_problem >= 1, f"{name}.max_per_problem must be >= 1 or null for no cap (got {s.max_per_problem}).")
        return p


def select(rows: list[dict], min_reward: float, max_per_problem, dedup: bool, seed: int) -> list[dict]:
    """Pure: the kept rows, at most `max_per_problem` per problem, drawn uniformly at random
    (after dedup, so repeated samples do not bias the draw toward easy problems)."""
    by_problem: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        if r.get("reward") is not None and r["reward"] >= min_reward:
            by_problem[r["prompt_id"]].append(r)
    rng = random.Random(seed)
    kept = []
    for pid in sorted(by_problem):
        group = by_problem[pid]
        if dedup:
            group = list({r["text"]: r for r in group}.values())
        if max_per_problem is not None and len(group) > max_per_problem:
            group = rng.sample(group, max_per_problem)
        kept.extend(group)
    return kept


@register_stage("filter", inputs=lambda cfg: {"scored": cfg.source, "rationalized": "rationalized?", "tuned": "tuned?"}, schema=FilterConfig)
def filter_stage(ctx: StageContext) -> StageResult:
    c = ctx.cfg
    generated = read_jsonl(ctx.inputs["scored"])
    rationalized = read_jsonl(ctx.inputs["rationalized"]) if ctx.inputs.get("rationalized") else []
    min_reward = tuned(ctx, "min_reward", c.min_reward)
    kept = select(generated + rationalized, min_reward, c.max_per_problem, c.dedup, ctx.seed)
    if not kept:
        raise StageError(
            f"The filter kept nothing in iteration {ctx.iteration}: 0 of {len(generated)} samples "
            f"(+{len(rationalized)} rationalized) reached reward {min_reward}. Try more samples per problem "
            "(generate.k), a higher generate.temperature, or a stronger seed model (more seed_sft.steps)."
        )
    prompt = (lambda q: q) if c.fewshot_exemplars else ctx.task.without_exemplars
    rows = [{"prompt": prompt(r["prompt"]), "completion": r["text"], "prompt_id": r["prompt_id"],
             "source": r.get("source", "generation")} for r in kept]
    write_jsonl(ctx.out / "train_data.jsonl", rows)
    from_rat = sum(r["source"] == "rationalization" for r in rows)
    problems = len({r["prompt_id"] for r in generated})
    return StageResult({"train_data": "train_data.jsonl"},
                       {"kept": len(rows), "kept_generated": len(rows) - from_rat, "kept_rationalized": from_rat,
                        "problems_covered": len({r["prompt_id"] for r in rows}),
                        "kept_fraction": round(len({r["prompt_id"] for r in rows}) / max(problems, 1), 4)})
