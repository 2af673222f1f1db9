"""Each sampling backend's config schema (the `backend=` group's choices)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass
class HFBackendConfig:
    name: str = "hf"
    batch_size: int = 256  # sequences (prompts x samples) per generate call
    device: str = "auto"  # auto | cpu | cuda
    # prompts per saved chunk of a sampling stage: a killed stage resumes at its first missing chunk
    chunk_prompts: int = 2048


@dataclass
class VLLMBackendConfig:
    name: str = "vllm"
    gpu_memory_utilization: float = 0.85
    tensor_parallel_size: int = 1
    max_model_len: Optional[int] = None
    enforce_eager: bool = False
    # prompts per engine call, saved as the stage goes: a killed stage resumes at its first
    # missing chunk. Large, because vLLM's throughput comes from scheduling many sequences at once.
    chunk_prompts: int = 4096
