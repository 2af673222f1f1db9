"""What every training stage (sft, dpo, grpo, and SCoRe's trainer for LoRA) shares: the
initial weights, data, step budget, optimizer, LoRA and multi-process settings."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from ..errors import Problems, installed
from ..paths import CONF_DIR


@dataclass
class LoraConfig:
    """PEFT LoRA for a train stage. The adapter is merged into the weights when training ends, so
    every stage and backend (transformers, vLLM) loads a plain checkpoint. Memory: only the
    adapter's parameters get gradients and optimizer state, so a 7-8B model trains on one 80 GB
    GPU in bf16 with r=16 on the attention projections."""

    enabled: bool = False
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: List[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    # The learning rate while LoRA is on: an adapter wants roughly 10x a full fine-tune's rate, so
    # a model preset can set both and `lora.enabled=true` alone switches. null: the section's own.
    learning_rate: Optional[float] = None


@dataclass
class TrainerConfig:
    """What every train stage (SFT, DPO) shares: initial weights, data, budget and optimizer."""

    kind: str = "sft"
    enabled: bool = True
    init: str = "base"  # scratch | base | policy: the weights training starts from
    data: str = "train_data"  # the dataset artifact to train on
    steps: int = 300
    step_growth: float = 1.0  # steps in iteration i = steps * step_growth ** (i - 1)
    # at most this many passes over the data (null: no cap): with few rows, `steps` would repeat them
    # many times (Self-Rewarding's pairs vary from tens to hundreds per iteration)
    max_epochs: Optional[float] = None
    # fine-tuning defaults for pretrained models; conf/model/tiny.yaml sets the from-scratch ones
    batch_size: int = 8
    learning_rate: float = 1e-5
    adam_beta2: float = 0.999
    # any transformers scheduler name; warmup_stable_decay (easy-to-hard's) holds the peak after the
    # warmup and decays linearly over the last `decay_ratio` of the steps to `min_lr_ratio` x peak
    lr_scheduler: str = "cosine"
    warmup_ratio: float = 0.05
    decay_ratio: float = 0.2
    min_lr_ratio: float = 0.0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    save_steps: int = 50  # trainer checkpoint interval: a killed stage resumes from the last one
    # tokens per training row (prompt + completion, chat template included). A row above it stops
    # the stage with the count and the value to set; null: no limit (the longest row sets it), which
    # pretrained presets use since few-shot prompts in a BPE tokenizer vary widely in length.
    max_length: Optional[int] = 192
    lora: LoraConfig = field(default_factory=LoraConfig)
    # >1: training in that many processes (one per GPU; gloo on CPU) under `accelerate launch`
    num_processes: int = 1
    # how those processes share the work: ddp | fsdp | deepspeed_zero2 | deepspeed_zero3, the
    # accelerate configs shipped in conf/accelerate/ (copy one to tune it). Only ddp runs on CPU.
    distributed: str = "ddp"

    @staticmethod
    def check(name: str, s, cfg) -> list[str]:
        p = Problems()
        if s.get("max_epochs") is not None:
            p.need(s.max_epochs > 0, f"{name}.max_epochs must be > 0 or null for no cap (got {s.max_epochs}).")
        p.need(s.init in ("scratch", "base", "policy") and (s.kind == "sft" or s.init != "scratch"),
               f"{name}.init must be base or policy{' or scratch' if s.kind == 'sft' else ''} (got '{s.init}').")
        p.need(s.steps >= 1, f"{name}.steps must be >= 1 (got {s.steps}).")
        p.need(s.batch_size >= 1, f"{name}.batch_size must be >= 1.")
        p.need(s.learning_rate > 0, f"{name}.learning_rate must be > 0.")
        p.need(s.step_growth > 0, f"{name}.step_growth must be > 0.")
        if s.get("lr_scheduler") == "warmup_stable_decay":
            p.need(0 < s.decay_ratio <= 1 and 0 <= s.min_lr_ratio < 1 and s.warmup_ratio + s.decay_ratio <= 1,
                   f"{name}: warmup_stable_decay needs 0 < decay_ratio <= 1, 0 <= min_lr_ratio < 1 and "
                   f"warmup_ratio + decay_ratio <= 1 (got warmup_ratio={s.warmup_ratio}, decay_ratio={s.decay_ratio}, "
                   f"min_lr_ratio={s.min_lr_ratio}).")
        p.need(s.num_processes >= 1, f"{name}.num_processes must be >= 1.")
        if s.num_processes > 1:  # each process takes batch_size / num_processes rows a step
            lower = max(s.num_processes, s.batch_size // s.num_processes * s.num_processes)
            p.need(s.batch_size % s.num_processes == 0,
                   f"{name}.batch_size={s.batch_size} is the global batch and must divide evenly over "
                   f"{name}.num_processes={s.num_processes} (else the global batch silently changes); use "
                   f"{name}.batch_size={lower} or {lower + s.num_processes}.")
        shipped = sorted(f.stem for f in (CONF_DIR / "accelerate").glob("*.yaml"))
        p.need(s.distributed in shipped, f"{name}.distributed must be one of {', '.join(shipped)} (got '{s.distributed}').")
        if s.num_processes > 1 and s.distributed.startswith("deepspeed"):
            p.need(installed("deepspeed"),
                   f"{name}.distributed={s.distributed} needs DeepSpeed: `pip install deepspeed` on the GPU machine.")
        if s.num_processes > 1 and s.distributed != "ddp":
            import torch

            p.need(torch.cuda.is_available() or cfg.device.startswith("cuda"),
                   f"{name}.distributed={s.distributed} needs GPUs and none is visible; use {name}.distributed=ddp on CPU.")
        return p
