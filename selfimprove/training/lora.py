"""LoRA adapters: the PEFT config for a stage's `lora` section, checked against the model."""
from __future__ import annotations

from ..errors import StageError


def lora_config(cfg, model, init: str, section: str = "train"):
    """A PEFT LoraConfig, after checking that the target modules exist in the model (`section`:
    the stage's config section, for the advice)."""
    from peft import LoraConfig

    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [t for t in cfg.target_modules if t not in names]
    if missing:
        linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if type(m).__name__ == "Linear"})
        example = [n for n in ("q_proj", "v_proj") if n in linear] or linear[:2]
        raise StageError(f"LoRA target module(s) {missing} do not exist in {init}. Its linear layers are: "
                         f"{', '.join(linear)}. Set e.g. {section}.lora.target_modules=[{','.join(example)}].")
    return LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=list(cfg.target_modules),
                      task_type="CAUSAL_LM")
