"""Easy-to-hard evaluation: greedy exact match per operand length on fresh gold-labelled problems
(the same problems in every run with the same task.data_seed, so runs and rounds compare). Gold is
used here only, for reporting; nothing this stage writes is trained on."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List

from ..backends import SamplingParams
from ..easy_to_hard import longest_at, require_length_task, trained_length
from ..metrics import mean
from ..rundir import write_jsonl
from . import StageContext, StageResult, register_stage
from .generate import run_sampler


@dataclass
class EvaluateLengthsConfig:
    """Exact match per operand length on fresh gold-labelled problems (reporting only). The
    window is relative to L, the longest length trained on after this round."""

    kind: str = "evaluate_lengths"
    enabled: bool = True
    per_length: int = 256
    window: List[int] = field(default_factory=lambda: [-3, 5])  # lengths L-3 .. L+5, as the paper
    lengths: List[int] = field(default_factory=list)  # explicit lengths instead of the window
    target: float = 0.99  # `longest_at_target`: longest length with every length up to it at >= this


@register_stage("evaluate_lengths", inputs=lambda cfg: {"model": "policy"}, schema=EvaluateLengthsConfig)
def evaluate_lengths(ctx: StageContext) -> StageResult:
    c, task = ctx.cfg, ctx.task
    require_length_task(task, "evaluate_lengths")
    top = trained_length(task.cfg.start_length, task.cfg.lengths_per_round, ctx.iteration)
    lengths = sorted(set(c.lengths)) or list(range(max(1, top + c.window[0]), top + c.window[1] + 1))
    rows, acc = [], {}
    with ctx.sampler(ctx.inputs["model"]) as sampler:
        for n in lengths:
            problems = task.problems(n, c.per_length, 0, gold=True, split="test")
            prompts = [task.prompt(p) for p in problems]
            params = SamplingParams(n=1, max_new_tokens=n + 2, seed=ctx.seed)
            outs = run_sampler(ctx, sampler, prompts, params, f"greedy d{n}")[0]
            ok = [task.reward(o[0], p) >= 1 for o, p in zip(outs, problems)]
            acc[n] = mean(ok)
            rows += [{"prompt_id": p["id"], "difficulty": n, "mode": "greedy", "text": o[0], "gold": p["answer"],
                      "correct": k} for p, o, k in zip(problems, outs, ok)]
    write_jsonl(ctx.out / "eval.jsonl", rows)
    longest = longest_at(acc, c.target)
    return StageResult({"eval": "eval.jsonl"}, {
        "trained_length": top, "accuracy": round(mean(list(acc.values())), 4),
        **{f"accuracy_d{n}": round(a, 4) for n, a in acc.items()},
        # the longest length with every evaluated length up to it at >= target (0: none)
        "longest_at_target": longest or 0,
        "accuracy_at_trained_plus_1": round(acc[top + 1], 4) if top + 1 in acc else None,
        "tokens_prompt": sum(2 * n + 3 for n in lengths) * c.per_length,
        "tokens_completion": sum(len(r["text"]) + 1 for r in rows)})
