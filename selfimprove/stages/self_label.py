"""Easy-to-hard self-labelling (Lee et al. 2025): new problems at this round's next length(s),
drawn WITHOUT gold answers, labelled with the current model's greedy output and filtered.

Filters (selfimprove/easy_to_hard.py): the length filter; optionally a vote across `vote_samples`
samples of the same model; and, when a train stage with `replicas` > 1 published independently
seeded `voters`, the paper's majority vote across models (identical output from at least
`model_vote_threshold` of them). Gold answers are computed only after the filters, for the
monitors (label accuracy of the kept labels); the kept rows never see them. On the accelerated
schedule gold also picks which lengths a round labels (as in the paper's code), never a label.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..backends import SamplingParams
from ..errors import Problems
from ..easy_to_hard import (accelerated_lengths, agreement, length_filter, position_limit, positions_of,
                            require_length_task, scheduled_length)
from ..metrics import mean
from ..rundir import write_json, write_jsonl
from ..sampling import run_sampler
from . import StageContext, StageResult, register_stage
from .evaluate_lengths import greedy_exact_match


@dataclass
class SelfLabelConfig:
    """Easy-to-hard (Lee et al. 2025): new problems at the round's next length(s), no gold,
    labelled with the current model's greedy output, then filtered (stages/self_label.py)."""

    kind: str = "self_label"
    enabled: bool = True
    num_problems: int = 5000  # per length added this round
    # length filter: drop a label at least this many tokens shorter than the round's longest
    # label (the paper's t; 1 for reversed addition); 0 turns it off
    length_filter: int = 1
    # cheap vote across samples of the one model: keep a label only if at least `vote_threshold`
    # of `vote_samples` samples at `vote_temperature` equal it; 0 samples turns it off
    vote_samples: int = 0
    vote_temperature: float = 0.7
    vote_threshold: float = 0.7
    # majority vote across independently seeded models (the `voters` a train stage with
    # `replicas` > 1 publishes): keep a label only if at least this share of all models (the
    # policy included) write the identical output; the paper keeps 4 of 5 (0.7). Used only when
    # a voters artifact exists.
    model_vote_threshold: float = 0.7
    # standard: the next task.lengths_per_round lengths a round. accelerated (the paper's fast
    # schedule): L+1, plus each further length the model already solves at >= accelerate_threshold
    # on accelerate_problems gold-checked problems (gold picks lengths, never labels), stopping at
    # the first it does not; at most accelerate_max_lengths lengths a round
    schedule: str = "standard"
    accelerate_threshold: float = 0.99
    accelerate_problems: int = 128
    accelerate_max_lengths: int = 8

    @staticmethod
    def check(name: str, s, cfg) -> list[str]:
        p = Problems()
        p.need(s.num_problems >= 1, f"{name}.num_problems must be >= 1 (got {s.num_problems}).")
        p.need(s.length_filter >= 0, f"{name}.length_filter must be >= 0 tokens, 0 for off (got {s.length_filter}).")
        p.need(s.vote_samples >= 0, f"{name}.vote_samples must be >= 0, 0 for off (got {s.vote_samples}).")
        p.need(s.schedule in ("standard", "accelerated"),
               f"{name}.schedule must be standard or accelerated (got '{s.schedule}').")
        p.need(s.accelerate_problems >= 1 and s.accelerate_max_lengths >= 1,
               f"{name}.accelerate_problems and {name}.accelerate_max_lengths must be >= 1.")
        for key in ("vote_threshold", "model_vote_threshold", "accelerate_threshold"):
            p.need(0 < s[key] <= 1, f"{name}.{key} is the share of votes a label needs and must be in (0, 1] "
                                    f"(got {s[key]}); the paper keeps labels 70% of the models agree on: 0.7.")
        return p


def voter_paths(path) -> list[str]:
    """The voters artifact is a folder of saved models (replica-1, replica-2, ...)."""
    if not path:
        return []
    return [str(p / "model") for p in sorted(Path(path).iterdir(), key=lambda p: int(p.name.rsplit("-", 1)[-1]))
            if (p / "model" / "config.json").exists()]


def this_rounds_lengths(ctx: StageContext, sampler) -> tuple[list[int], dict[int, float]]:
    """The operand lengths this round labels, and the gold-checked accuracies the fast schedule
    measured to choose them (none on the standard schedule)."""
    c, task = ctx.cfg, ctx.task
    top = scheduled_length(ctx.inputs.get("schedule"), task.cfg, ctx.iteration - 1)  # L before this round
    if c.schedule == "standard":
        return list(range(top + 1, top + task.cfg.lengths_per_round + 1)), {}
    measured: dict[int, float] = {}

    def accuracy_at(n: int) -> float:
        graded = greedy_exact_match(ctx, sampler, n, c.accelerate_problems, ctx.iteration, "probe", f"probe d{n}")
        measured[n] = mean([r["correct"] for r in graded])
        return measured[n]

    limit = position_limit(ctx.model_cfg)
    fits = lambda n: limit is None or positions_of(n) <= limit  # noqa: E731
    return accelerated_lengths(top, accuracy_at, c.accelerate_threshold, c.accelerate_max_lengths, fits), measured


@register_stage("self_label", inputs=lambda cfg: {"model": "policy", "voters": "voters?", "schedule": "schedule?"},
                schema=SelfLabelConfig)
def self_label(ctx: StageContext) -> StageResult:
    c, task = ctx.cfg, ctx.task
    require_length_task(task, "self_label")
    with ctx.sampler(ctx.inputs["model"]) as sampler:
        lengths, probed = this_rounds_lengths(ctx, sampler)
        problems = [p for n in lengths for p in task.problems(n, c.num_problems, ctx.iteration, gold=False)]
        assert all("answer" not in p for p in problems)  # the labels below must come from the model alone
        prompts = [task.prompt(p) for p in problems]
        greedy = SamplingParams(n=1, max_new_tokens=max(lengths) + 2, seed=ctx.seed)
        labels = [o[0] for o in run_sampler(ctx, sampler, prompts, greedy, "greedy labels")[0]]
        samples = [[] for _ in problems]
        if c.vote_samples > 0:
            params = SamplingParams(n=c.vote_samples, temperature=c.vote_temperature,
                                    max_new_tokens=max(lengths) + 2, seed=ctx.seed + 1)
            samples = run_sampler(ctx, sampler, prompts, params, "vote samples")[0]
    voters = voter_paths(ctx.inputs.get("voters"))
    votes: list[list[str]] = [[] for _ in problems]
    for i, path in enumerate(voters):  # each independently seeded model labels the same problems
        with ctx.sampler(path) as sampler:
            out = run_sampler(ctx, sampler, prompts, greedy, f"voter {i + 1} labels")[0]
        for v, o in zip(votes, out):
            v.append(o[0])

    keep_len = length_filter(labels, [p["difficulty"] for p in problems], c.length_filter)
    keep_sample = [agreement(lab, s) >= c.vote_threshold if s else True for lab, s in zip(labels, samples)]
    # the policy votes for its own label: agreement among all 1 + len(voters) models
    keep_model = [(1 + sum(v == lab for v in vs)) / (1 + len(vs)) >= c.model_vote_threshold if vs else True
                  for lab, vs in zip(labels, votes)]
    rows, kept = [], []
    for p, prompt, lab, a, b, m in zip(problems, prompts, labels, keep_len, keep_sample, keep_model):
        row = {"prompt_id": p["id"], "difficulty": p["difficulty"], "round": ctx.iteration, "prompt": prompt,
               "completion": lab, "kept": a and b and m,
               "dropped_by": [k for k, ok in (("length", a), ("sample_vote", b), ("model_vote", m)) if not ok]}
        rows.append(row)
        if row["kept"]:
            kept.append({k: row[k] for k in ("prompt", "completion", "prompt_id", "difficulty", "round")})
    write_jsonl(ctx.out / "labels.jsonl", kept)  # the only artifact training reads: no gold in it

    # Monitors, for reporting only (gold is computed here, after every decision above was made).
    right = [task.reward(r["completion"], {"answer": task.gold(p)}) >= 1 for r, p in zip(rows, problems)]
    for r, ok in zip(rows, right):
        r["label_correct"] = ok
    write_jsonl(ctx.out / "all_labels.jsonl", rows)
    kept_right = [ok for r, ok in zip(rows, right) if r["kept"]]
    metrics = {
        "length": max(lengths), "lengths_added": len(lengths), "problems": len(problems), "kept": len(kept),
        "kept_fraction": round(len(kept) / len(problems), 4),
        "label_accuracy": round(mean(kept_right), 4) if kept_right else None,
        "label_accuracy_all": round(mean(right), 4),
        "dropped_length": keep_len.count(False), "dropped_sample_vote": keep_sample.count(False),
        "dropped_model_vote": keep_model.count(False), "voters": len(voters),
        # compute accounting: tokens through the model (prompt incl. BOS; completion incl. EOS)
        "tokens_prompt": (1 + len(voters) + c.vote_samples) * sum(len(p) + 1 for p in prompts),
        "tokens_completion": sum(len(lab) + 1 for lab in labels) * (1 + len(voters))
        + sum(len(t) + 1 for s in samples for t in s),
    }
    if not kept:  # not fatal: this round's mixture is then the original data and older rounds only
        ctx.ui.log(f"[yellow]self_label kept none of the {len(problems)} labels of round {ctx.iteration} (lengths "
                   f"{lengths}); the model cannot label them yet. Train round 0 longer (seed_sft.steps) or "
                   f"loosen the filters.[/]")
    # L after this round, for the next round's schedule and this round's evaluation window
    write_json(ctx.out / "schedule.json", {"lengths": lengths, "trained_length": max(lengths),
                                           "probed": {str(n): a for n, a in probed.items()}})
    metrics.update({f"probe_accuracy_d{n}": round(a, 4) for n, a in probed.items()})
    return StageResult({"round_labels": "labels.jsonl", "schedule": "schedule.json"}, metrics)
