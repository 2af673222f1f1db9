"""Sampling engines behind one interface: `generate(prompts, n, params) -> [[text] * n]`."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Protocol


@dataclass(frozen=True)
class SamplingParams:
    n: int = 1
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 128
    seed: int = 0


class BackendUnavailable(RuntimeError):
    """A sampling engine cannot run (not installed, no GPU) or cannot run this input: the message
    says why and what to change. The CLI prints it without a traceback."""


class SamplingRefused(BackendUnavailable):
    """Input the engine would fail on (a prompt longer than the model's context, a batch that does
    not fit in memory), refused with the numbers and the setting to change."""


Progress = Optional[Callable[[int], None]]  # called with the number of prompts just finished


class Sampler(Protocol):
    def generate(self, prompts: list[str], params: SamplingParams, progress: Progress = None) -> list[list[str]]: ...

    def close(self) -> None: ...


def policy_sampler(backend_cfg, model, tokenizer, model_cfg, device: str, who: str, chat: bool) -> Sampler:
    """A sampler on an in-memory policy that an RL stage updates between calls (on-policy: every
    call sees the current weights). The transformers backend shares the model object; vLLM would
    need the new weights pushed into its engine every step, which is not built, so it is refused.
    `chat`: whether prompts go through the chat template (the stage's log-probs must match)."""
    if backend_cfg.name != "hf":
        raise ValueError(f"'{who}' samples its training episodes from the policy it is updating, which only "
                         f"backend=hf can do (backend={backend_cfg.name} would need the weights synced into the "
                         f"engine every step, not built yet). Run this recipe with backend=hf.")
    from .hf import HFSampler

    return HFSampler("", backend_cfg, model_cfg, device, model=model, tokenizer=tokenizer, chat=chat)


def build_sampler(backend_cfg, model_path: str, model_cfg, device: str) -> Sampler:
    if backend_cfg.name == "hf":
        from .hf import HFSampler

        return HFSampler(model_path, backend_cfg, model_cfg, device)
    if backend_cfg.name == "vllm":
        from .vllm import VLLMSampler

        return VLLMSampler(model_path, backend_cfg, model_cfg, device)
    raise ValueError(f"Unknown backend '{backend_cfg.name}'. Available: hf, vllm.")
