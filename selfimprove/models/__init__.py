"""Loading models and tokenizers: the tiny from-scratch model and any Hugging Face checkpoint go
through the same `from_pretrained` path once saved."""
from __future__ import annotations

import os
from pathlib import Path

import torch


def resolve_device(name: str = "auto") -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def resolve_dtype(name: str, device: str) -> torch.dtype:
    if name == "auto":
        # bf16 matmuls are ~30x slower than fp32 on AVX2 CPUs; on GPUs bf16 is the norm.
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return getattr(torch, name)


class ModelNotFoundError(FileNotFoundError):
    pass


def _not_found(path: str, exc: Exception) -> ModelNotFoundError:
    return ModelNotFoundError(
        f"Could not load model '{path}': {type(exc).__name__}: {str(exc).splitlines()[0]}\n"
        f"If this is a hub id, the machine may be offline (HF_HUB_OFFLINE="
        f"{os.environ.get('HF_HUB_OFFLINE', 'unset')}): download it elsewhere with "
        f"`huggingface-cli download {path} --local-dir DIR` and pass model.name_or_path=DIR."
    )


def load_tokenizer(path: str | Path, trust_remote_code: bool = False, padding_side: str = "right"):
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise _not_found(str(path), exc) from exc
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = padding_side
    return tok


def load_model(path: str | Path, dtype: str = "auto", device: str = "cpu", trust_remote_code: bool = False):
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        model = AutoModelForCausalLM.from_pretrained(
            str(path), dtype=resolve_dtype(dtype, device), trust_remote_code=trust_remote_code,
            use_safetensors=True,  # never unpickle weights from a model repo
        )
    except (OSError, ValueError) as exc:
        raise _not_found(str(path), exc) from exc
    return model.to(device)


def render_prompts(tokenizer, prompts: list, chat: bool) -> list[str]:
    """The text a model is given: the task's prompt, or with `chat` that prompt as a user turn in
    the tokenizer's chat template (which then carries the special tokens itself). With `chat` a
    prompt may also be a whole conversation (a list of {"role", "content"} turns: SCoRe's second
    turn), rendered with the generation prompt after its last turn."""
    from ..errors import ConfigError  # a setting's fault: the CLI prints it without a traceback

    if not chat:
        if any(not isinstance(p, str) for p in prompts):
            raise ConfigError("a conversation (list of turns) can only be rendered with model.chat_template=true")
        return prompts
    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError(f"model.chat_template=true but the tokenizer of {tokenizer.name_or_path} has no chat "
                         "template. Set model.chat_template=false for a base model.")
    return [tokenizer.apply_chat_template([{"role": "user", "content": p}] if isinstance(p, str) else p,
                                          tokenize=False, add_generation_prompt=True)
            for p in prompts]
