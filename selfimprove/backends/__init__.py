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


Progress = Optional[Callable[[int], None]]  # called with the number of prompts just finished


class Sampler(Protocol):
    def generate(self, prompts: list[str], params: SamplingParams, progress: Progress = None) -> list[list[str]]: ...

    def close(self) -> None: ...


def build_sampler(backend_cfg, model_path: str, model_cfg, device: str) -> Sampler:
    if backend_cfg.name == "hf":
        from .hf import HFSampler

        return HFSampler(model_path, backend_cfg, model_cfg, device)
    if backend_cfg.name == "vllm":
        from .vllm import VLLMSampler

        return VLLMSampler(model_path, backend_cfg, model_cfg, device)
    raise ValueError(f"Unknown backend '{backend_cfg.name}'. Available: hf, vllm.")
