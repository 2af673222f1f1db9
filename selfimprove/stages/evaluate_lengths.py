"""Easy-to-hard evaluation: greedy exact match per operand length on fresh gold-labelled problems
(the same problems in every run with the same task.data_seed, so runs and rounds compare). Gold is
used here only, for reporting; nothing this stage writes is trained on."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List

from ..backends import SamplingParams
from ..easy_to_hard import longest_at, position_limit, positions_of, require_length_task, scheduled_length
from ..metrics import mean
from ..rundir import write_jsonl
from ..sampling import run_sampler
from . import StageContext, StageResult, register_stage


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


def greedy_exact_match(ctx: StageContext, sampler, n: int, count: int, seed: int, split: str, label: str) -> list[dict]:
    """`count` fresh gold-labelled problems with n-digit operands, answered greedily: one row per
    problem with the text and whether it matches gold (evaluation, and the fast schedule's probe)."""
    task = ctx.task
    problems = task.problems(n, count, seed, gold=True, split=split)
    params = SamplingParams(n=1, max_new_tokens=n + 2, seed=ctx.seed)
    outs = run_sampler(ctx, sampler, [task.prompt(p) for p in problems], params, label)[0]
    return [{"prompt_id": p["id"], "difficulty": n, "mode": "greedy", "text": o[0], "gold": p["answer"],
             "correct": task.reward(o[0], p) >= 1} for p, o in zip(problems, outs)]


@register_stage("evaluate_lengths", inputs=lambda cfg: {"model": "policy", "schedule": "schedule?"},
                schema=EvaluateLengthsConfig)
def evaluate_lengths(ctx: StageContext) -> StageResult:
    c, task = ctx.cfg, ctx.task
    require_length_task(task, "evaluate_lengths")
    top = scheduled_length(ctx.inputs.get("schedule"), task.cfg, ctx.iteration)  # L after this round
    lengths = sorted(set(c.lengths)) or list(range(max(1, top + c.window[0]), top + c.window[1] + 1))
    limit = position_limit(ctx.model_cfg)
    skipped = [n for n in lengths if limit is not None and positions_of(n) > limit]
    if skipped:  # the fast schedule can outrun the positions the config check sized for
        ctx.ui.log(f"[yellow]{ctx.name}: lengths {skipped} need more than model.tiny.max_position_embeddings={limit} "
                   f"positions and are not evaluated; raise it to {positions_of(max(skipped))}.[/]")
        lengths = [n for n in lengths if n not in skipped]
    rows, acc = [], {}
    with ctx.sampler(ctx.inputs["model"]) as sampler:
        for n in lengths:
            graded = greedy_exact_match(ctx, sampler, n, c.per_length, seed=0, split="test", label=f"greedy d{n}")
            acc[n] = mean([r["correct"] for r in graded])
            rows += graded
    write_jsonl(ctx.out / "eval.jsonl", rows)
    longest = longest_at(acc, c.target)
    return StageResult({"eval": "eval.jsonl"}, {
        "trained_length": top, "accuracy": round(mean(list(acc.values())), 4), "skipped_lengths": skipped,
        **{f"accuracy_d{n}": round(a, 4) for n, a in acc.items()},
        # the longest length with every evaluated length up to it at >= target (0: none)
        "longest_at_target": longest or 0,
        "accuracy_at_trained_plus_1": round(acc[top + 1], 4) if top + 1 in acc else None,
        "tokens_prompt": sum(2 * n + 3 for n in lengths) * c.per_length,
        "tokens_completion": sum(len(r["text"]) + 1 for r in rows)})
