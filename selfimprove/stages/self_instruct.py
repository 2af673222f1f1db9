"""Self-instruction: the current model writes new prompts from a few-shot prompt of pool
examples; each completion is checked by the task's parser (for the built-in task: a problem
"a+b" within its digit range). Invalid, repeated, copied-from-the-shots and held-out-overlapping
prompts are dropped and counted. The paper used a fixed Llama 2-Chat 70B here; the trained model
itself writing them is the fully "self" variant (a deviation the recipe records)."""
from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from typing import List, Optional

from ..backends import SamplingParams
from ..errors import Problems
from ..rundir import read_jsonl, write_jsonl
from ..sampling import run_sampler
from . import StageContext, StageError, StageResult, register_stage


@dataclass
class SelfInstructConfig:
    """The policy writes new prompts from few-shot prompts of pool examples (paper: 8-shot, T=0.6, p=0.9)."""

    kind: str = "self_instruct"
    enabled: bool = True
    num_prompts: int = 600  # attempts; invalid/duplicate ones are dropped
    max_kept: Optional[int] = None
    # Shares of the kept prompts per task difficulty 1, 2, ... (the task's digit count for the
    # built-in task), e.g. [0, 0, 0, 1] for 4-digit problems only. The model writes what it has
    # seen most; quotas steer the prompts to where its answers still differ. Oversample with
    # num_prompts: prompts over a difficulty's quota are dropped and counted. null: keep all.
    difficulty_weights: Optional[List[float]] = None
    shots: int = 4
    temperature: float = 0.6
    top_p: float = 0.9
    max_new_tokens: int = 24

    @staticmethod
    def check(name: str, s, cfg) -> list[str]:
        p = Problems()
        if not s.enabled:
            return p
        p.need(s.num_prompts >= 1 and s.shots >= 1, f"{name}.num_prompts and {name}.shots must be >= 1.")
        w = s.difficulty_weights
        p.need(w is None or (len(w) and min(w) >= 0 and sum(w) > 0),
               f"{name}.difficulty_weights must be non-negative shares per difficulty 1, 2, ... with a positive sum, "
               f"e.g. [0, 0, 0, 1] for 4-digit problems only, or null to keep all (got {list(w or [])}).")
        return p


@register_stage("self_instruct", inputs=lambda cfg: {"model": "policy", "pool": "train", "test": "test", "val": "val"}, schema=SelfInstructConfig)
def self_instruct(ctx: StageContext) -> StageResult:
    c, task = ctx.cfg, ctx.task
    pool = read_jsonl(ctx.inputs["pool"])
    if len(pool) < c.shots:
        raise StageError(f"self_instruct needs at least {c.shots} pool prompts for its few-shot prompt; the train "
                         f"split has {len(pool)}. Lower self_instruct.shots.")
    heldout = {p["question"] for split in ("test", "val") for p in read_jsonl(ctx.inputs[split])}
    rng = random.Random(ctx.seed)
    shots = [rng.sample(pool, c.shots) for _ in range(c.num_prompts)]
    prompts = [task.instruction_prompt(s) for s in shots]
    params = SamplingParams(n=1, temperature=c.temperature, top_p=c.top_p, max_new_tokens=c.max_new_tokens,
                            seed=ctx.seed)
    with ctx.sampler(ctx.inputs["model"]) as sampler:
        outs, speed = run_sampler(ctx, sampler, prompts, params, "writing prompts")
    counts = {"invalid": 0, "duplicate": 0, "copied": 0, "heldout_overlap": 0}
    kept, seen = [], set()
    for shown, (text,) in zip(shots, outs):
        q = task.parse_instruction(text)
        why = ("invalid" if q is None else "duplicate" if q in seen else
               "copied" if q in {p["question"] for p in shown} else "heldout_overlap" if q in heldout else None)
        if why:
            counts[why] += 1
            continue
        seen.add(q)
        kept.append({"question": q, "difficulty": task.difficulty_of(q)})
    if c.difficulty_weights is not None:
        kept, counts["over_quota"] = _quotas(kept, list(c.difficulty_weights), c.max_kept)
    if c.max_kept is not None:
        kept = kept[:c.max_kept]
    kept = [{"id": f"si{ctx.iteration}-{i}", **p} for i, p in enumerate(kept)]
    metrics = {"attempted": len(prompts), "kept": len(kept), **counts,
               **{f"kept_d{d}": n for d, n in sorted(Counter(p["difficulty"] for p in kept
                                                             if p["difficulty"] is not None).items())},
               "valid_fraction": round((len(prompts) - counts["invalid"]) / max(len(prompts), 1), 4), **speed}
    if not kept and counts.get("over_quota"):
        raise StageError(f"self_instruct kept no prompt: {metrics}. The model wrote no prompt of some difficulty "
                         f"self_instruct.difficulty_weights={list(c.difficulty_weights)} asks for: give it a zero "
                         "share, raise self_instruct.num_prompts, or set self_instruct.difficulty_weights=null.")
    if not kept:
        raise StageError(f"self_instruct kept no prompt: {metrics}. The model did not write prompts in the task's "
                         "format: train the seed model longer (seed_sft.steps), add self-instruction demonstrations "
                         "(judge_seed.instruct_examples), or sample from the task's prompts instead "
                         "(self_instruct.enabled=false generate.split=train).")
    write_jsonl(ctx.out / "instructions.jsonl", kept)
    return StageResult({"instructions": "instructions.jsonl"}, metrics)


def _quotas(kept: list[dict], weights: list[float], max_kept) -> tuple[list[dict], int]:
    """The largest selection whose difficulty shares are `weights` (shares per difficulty 1, 2, ...),
    in the order written: each difficulty keeps its first `share * total` prompts, where total is as
    large as the scarcest wanted difficulty allows. Returns the selection and how many were dropped."""
    if any(p["difficulty"] is None for p in kept):
        raise StageError("self_instruct.difficulty_weights needs the task to tell each prompt's difficulty, and this "
                         "task does not: set self_instruct.difficulty_weights=null.")
    share = {d: w / sum(weights) for d, w in enumerate(weights, 1) if w > 0}
    have = Counter(p["difficulty"] for p in kept)
    total = min(have[d] / s for d, s in share.items())
    if max_kept is not None:
        total = min(total, max_kept)
    quota = {d: int(s * total + 1e-9) for d, s in share.items()}
    out = []
    for p in kept:
        if quota.get(p["difficulty"], 0) > 0:
            quota[p["difficulty"]] -= 1
            out.append(p)
    return out, len(kept) - len(out)
