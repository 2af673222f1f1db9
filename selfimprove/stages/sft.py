"""Supervised fine-tuning with TRL's SFTTrainer on prompt/completion rows (loss on the completion).

Used twice by STaR-style recipes: `seed_sft` trains the from-scratch model on worked examples,
`train` fine-tunes on the filtered self-generated data. Trainer checkpoints are written into the
stage's working folder every `save_steps`, so a killed stage resumes from the last one (with its
optimizer, scheduler and RNG state) and reaches the same weights as an uninterrupted run
(`training/fit.py`, shared with the other train stages).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import Problems
from ..rundir import write_json
from ..training.fit import fit, training_rows
from ..training.launch import data_parallel_or
from ..training.options import TrainerConfig
from ..training.selection import ValSelector
from . import StageContext, StageError, StageResult, register_stage


@dataclass
class SFTConfig(TrainerConfig):
    """Supervised fine-tuning with TRL's SFTTrainer, loss on the completion only."""

    # ReST-EM's early stopping: greedy reward on the `val` split at every checkpoint; the best
    # checkpoint, not the last, becomes the stage's model.
    select_by_val: bool = False
    val_max_new_tokens: int = 128
    # Independently seeded copies trained alongside the policy and published as `voters`
    # (easy-to-hard's majority vote across models); 1: just the policy.
    replicas: int = 1

    @staticmethod
    def check(name: str, s, cfg) -> list[str]:
        p = Problems(TrainerConfig.check(name, s, cfg))
        p.need(s.replicas >= 1, f"{name}.replicas must be >= 1 (got {s.replicas}); the paper votes across 5 models.")
        p.need(s.replicas == 1 or (s.num_processes == 1 and not s.select_by_val and not s.lora.enabled),
               f"{name}.replicas > 1 trains plain single-process models: set {name}.num_processes=1, "
               f"{name}.select_by_val=false and {name}.lora.enabled=false, or {name}.replicas=1.")
        p.need(not (s.num_processes > 1 and s.select_by_val and s.distributed != "ddp"),
               f"{name}.select_by_val with {name}.num_processes > 1 needs {name}.distributed=ddp: the first "
               f"process validates the whole model, which under {s.distributed} it does not hold.")
        return p


def _inputs(cfg) -> dict[str, str]:
    roles = {"data": cfg.data}
    if cfg.init != "scratch":
        roles["init"] = cfg.init
    if cfg.select_by_val:
        roles["val"] = "val"
    if cfg.replicas > 1 and cfg.init != "scratch":
        roles["voters"] = "voters"  # each seeded replica goes on from its own previous weights
    return roles


@register_stage("sft", inputs=_inputs, schema=SFTConfig)
def sft(ctx: StageContext) -> StageResult:
    if ctx.cfg.replicas > 1:
        return _replicas(ctx)
    return data_parallel_or(_train, ctx)


def _replicas(ctx: StageContext) -> StageResult:
    """Easy-to-hard's majority vote needs independently seeded models: replicas 1..R-1 are trained
    like the policy (same data and budget, seed + i, each from its own previous weights) into
    voters/replica-i/, and published together as the `voters` artifact. A finished replica leaves
    done.json, so a killed stage skips it and resumes the one it was training."""
    from dataclasses import replace

    for i in range(1, ctx.cfg.replicas):
        out = ctx.out / "voters" / f"replica-{i}"
        if (out / "done.json").exists():
            continue
        out.mkdir(parents=True, exist_ok=True)
        inputs = dict(ctx.inputs)
        if ctx.cfg.init != "scratch":
            prev = Path(ctx.inputs["voters"]) / f"replica-{i}" / "model"
            if not (prev / "config.json").exists():
                raise StageError(f"'{ctx.name}' trains {ctx.cfg.replicas} replicas from their previous weights, but "
                                 f"{prev} does not exist: give the stage that trained them as many replicas.")
            inputs["init"] = str(prev)
        result = _train(replace(ctx, out=out, seed=ctx.seed + i, inputs=inputs))
        write_json(out / "done.json", result.metrics)
    result = _train(ctx)
    return StageResult({**result.artifacts, "voters": "voters"}, {**result.metrics, "replicas": ctx.cfg.replicas})


def _train(ctx: StageContext) -> StageResult:
    from trl import SFTConfig, SFTTrainer

    rows = training_rows(ctx, "Nothing was kept by the filter: try more samples per problem (generate.k), a higher "
                              "generate.temperature, more problems, or a stronger seed model (more seed_sft.steps).")
    if ctx.model_cfg.chat_template:  # conversational rows: TRL applies the tokenizer's chat template
        pairs = [{"prompt": [{"role": "user", "content": r["prompt"]}],
                  "completion": [{"role": "assistant", "content": r["completion"]}]} for r in rows]
    else:
        pairs = [{"prompt": r["prompt"], "completion": r["completion"]} for r in rows]
    run = fit(ctx, SFTTrainer, SFTConfig, pairs, {"completion_only_loss": True, "packing": False},
              selector_cls=ValSelector if ctx.cfg.select_by_val else None)
    tokens = sum(len(r["prompt"]) + len(r["completion"]) for r in rows)  # chars ~ tokens for the tiny model
    return StageResult({"policy": "model"}, {**run.metrics(ctx.cfg, len(rows)),
                                             "chars_per_example": round(tokens / len(rows), 1)})
