"""The policy and the frozen reference of the SCoRe trainer (stages/score_rl.py), with or without LoRA.

Without LoRA the policy is a full copy of the initial weights and the reference a second, frozen
copy of the base model. With `score_rl.lora.enabled=true` only a PEFT LoRA adapter is trained and
the reference is, wherever possible, the same model with the adapter switched off, so the base
weights are held once and only the adapter gets gradients and optimizer state:

  - the policy is the base model (SCoRe Stage I): a fresh adapter on it;
  - the policy was published by an earlier LoRA score_rl together with its adapter (Stage II
    after Stage I): that adapter, still trainable, on the base model. base + adapter is the
    published (merged) policy, so Stage II starts from Stage I's policy as the method says;
  - otherwise (the policy came from a full fine-tune): a fresh adapter on the policy and a second,
    frozen copy of the base model as the reference (the memory win is lost, the method is not).

The adapter is published as the artifact `policy_adapter` only when it sits on the base model,
which after the setup stages never changes in a run; that is what makes the second case safe.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

import torch

from .models import load_model
from .training.lora import lora_config


class Policy:
    """`model` is trained; `reference()` gives the frozen model the KL term is measured against."""

    def __init__(self, model, ref, mode: str):
        self.model, self.ref, self.mode = model, ref, mode

    @property
    def lora(self) -> bool:
        return self.mode != "full"

    def trainable(self) -> list:
        return [p for p in self.model.parameters() if p.requires_grad]

    @contextlib.contextmanager
    def reference(self):
        if self.ref is not None:
            yield self.ref
        else:
            with self.model.disable_adapter():  # the base model: LoRA layers pass their input through
                yield self.model

    def publish(self, out: Path) -> dict[str, str]:
        """Save the stage's model to out/model (merged with LoRA: a plain checkpoint every later
        stage and sampler loads unchanged) and return the artifacts."""
        if not self.lora:
            self.model.save_pretrained(out / "model")
            return {"policy": "model"}
        artifacts = {"policy": "model"}
        if self.mode in ("base", "continue"):  # the adapter sits on the base model: a later stage can go on with it
            self.model.save_pretrained(out / "adapter")
            artifacts["policy_adapter"] = "adapter"
        self.model.merge_and_unload().save_pretrained(out / "model")
        return artifacts


def _same(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and Path(a).resolve() == Path(b).resolve()


def build_policy(ctx, checkpoint: Path | None) -> Policy:
    """The policy (from `checkpoint`, a resumed stage's saved weights or adapter, if given) and its reference."""
    c, m = ctx.cfg, ctx.model_cfg
    init, ref_path = ctx.inputs["init"], ctx.inputs["ref"]

    def load(path):
        return load_model(path, m.dtype, ctx.device, m.trust_remote_code)

    def frozen(path):
        model = load(path).eval()
        model.requires_grad_(False)
        return model

    if not c.lora.enabled:
        return Policy(load(checkpoint or init), frozen(ref_path), "full")
    from peft import PeftModel, get_peft_model

    adapter = ctx.inputs.get("adapter")
    if _same(init, ref_path):
        mode = "base"
    elif adapter is not None and _same(str(Path(adapter).parent), str(Path(init).parent)):
        mode = "continue"  # published together with the policy by the same stage
    else:
        mode = "separate"
    base = load(ref_path if mode == "continue" else init)
    if checkpoint is not None:
        model = PeftModel.from_pretrained(base, str(checkpoint), is_trainable=True)
    elif mode == "continue":
        model = PeftModel.from_pretrained(base, adapter, is_trainable=True)
    else:
        spec = lora_config(c.lora, base, init, ctx.name)  # a clear StageError for a module the model lacks
        torch.manual_seed(ctx.seed)  # the adapter's random init: the same on every run
        model = get_peft_model(base, spec)
    if mode == "separate":
        ctx.ui.log(f"  {ctx.name}: the policy is not the base model plus a LoRA adapter from an earlier "
                   f"{ctx.cfg.kind} stage, so the KL reference is a second, frozen copy of {ref_path}")
    return Policy(model, frozen(ref_path) if mode == "separate" else None, mode)
