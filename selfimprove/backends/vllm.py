"""vLLM as a sampling engine (optional extra, CUDA only): `pip install "selfimprove[vllm]"`.

The engine is built from the checkpoint on disk for every stage that samples, so the weights it
serves are always the ones the previous stage saved (no in-place weight sync to break between
iterations). The argument mapping is kept in pure functions so it is tested without a GPU.
"""
from __future__ import annotations

from . import BackendUnavailable, Progress, SamplingParams  # noqa: F401 (BackendUnavailable: imported from here)


def engine_kwargs(model_path: str, backend_cfg, model_cfg, seed: int = 0) -> dict:
    kwargs = {
        "model": str(model_path),
        "tokenizer": str(model_path),
        "dtype": "auto" if model_cfg.dtype == "auto" else model_cfg.dtype,
        "gpu_memory_utilization": backend_cfg.gpu_memory_utilization,
        "tensor_parallel_size": backend_cfg.tensor_parallel_size,
        "trust_remote_code": model_cfg.trust_remote_code,
        "enforce_eager": backend_cfg.enforce_eager,
        "seed": seed,
        # prompts of a stage share their few-shot exemplars / template: their KV blocks are computed
        # once and reused (vLLM's automatic prefix caching; on by default in recent versions, said
        # here so that older ones do it too)
        "enable_prefix_caching": True,
    }
    if backend_cfg.max_model_len:
        kwargs["max_model_len"] = backend_cfg.max_model_len
    return kwargs


def sampling_kwargs(params: SamplingParams, prompt_index: int) -> dict:
    """vLLM SamplingParams for one prompt: k samples in one request, a per-prompt seed so results
    do not depend on how prompts are batched; temperature 0 is greedy."""
    kwargs = {"n": params.n, "temperature": params.temperature, "max_tokens": params.max_new_tokens,
              "seed": params.seed * 1_000_003 + prompt_index}
    if params.temperature > 0 and params.top_p < 1.0:
        kwargs["top_p"] = params.top_p
    if params.temperature > 0 and params.top_k > 0:
        kwargs["top_k"] = params.top_k
    return kwargs


def prompt_tokens_run(inputs: list[dict], outputs) -> int:
    """Prompt tokens vLLM prefilled: each request's prompt once (its n samples share it) less the
    tokens it found in the prefix cache (`num_cached_tokens`, None or absent where a version does
    not report it: then nothing is taken off)."""
    return sum(len(i["prompt_token_ids"]) - int(getattr(o, "num_cached_tokens", None) or 0)
               for i, o in zip(inputs, outputs))


def checkpoint_params(model_path) -> int | None:
    """N for the FLOPs estimate, from the safetensors headers (no weights are read); None for a
    hub name or another format."""
    import json
    import struct
    from math import prod
    from pathlib import Path

    files = sorted(Path(model_path).glob("*.safetensors")) if Path(model_path).is_dir() else []
    total = 0
    for f in files:
        with open(f, "rb") as fh:
            header = json.loads(fh.read(struct.unpack("<Q", fh.read(8))[0]))
        total += sum(prod(t["shape"]) for k, t in header.items() if k != "__metadata__")
    return total or None


class VLLMSampler:
    def __init__(self, model_path: str, backend_cfg, model_cfg, device: str):
        try:
            import vllm
        except ImportError:
            raise BackendUnavailable(
                "backend=vllm needs vLLM, which is not installed. In a CUDA environment run "
                "`pip install \"selfimprove[vllm]\"`; on a CPU machine use backend=hf."
            ) from None
        import torch

        if not torch.cuda.is_available():
            raise BackendUnavailable("backend=vllm needs a CUDA GPU and none is visible "
                                     "(torch.cuda.is_available() is False). Use backend=hf on CPU.")
        self._vllm = vllm
        self.chat = model_cfg.chat_template
        self.llm = vllm.LLM(**engine_kwargs(model_path, backend_cfg, model_cfg))
        self.params = checkpoint_params(model_path)

    def generate(self, prompts: list[str], params: SamplingParams, progress: Progress = None) -> list[list[str]]:
        from ..models import render_prompts

        tok = self.llm.get_tokenizer()
        # token ids, so that a chat-rendered prompt does not get a second BOS
        inputs = [{"prompt_token_ids": tok(p, add_special_tokens=not self.chat)["input_ids"]}
                  for p in render_prompts(tok, prompts, self.chat)]
        sps = [self._vllm.SamplingParams(**sampling_kwargs(params, i)) for i in range(len(prompts))]
        outputs = self.llm.generate(inputs, sps, use_tqdm=False)  # vLLM batches and schedules itself
        from .. import compute

        # counted as the transformers backend counts: the prompt tokens prefilled, every generated
        # token (vLLM's token_ids include the stop token when it ended on one)
        compute.add(tokens_prompt=prompt_tokens_run(inputs, outputs),
                    tokens_completion=sum(len(c.token_ids) for o in outputs for c in o.outputs))
        if self.params is not None:
            compute.note_params(self.params)
        if progress:
            progress(len(prompts))
        return [[c.text for c in o.outputs] for o in outputs]

    def close(self) -> None:
        import gc

        import torch

        del self.llm  # free GPU memory before the next stage trains or loads another engine
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
