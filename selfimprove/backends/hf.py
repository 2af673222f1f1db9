"""transformers `generate` as a sampling engine: batched, KV-cached, k samples per prompt."""
from __future__ import annotations

import torch

from ..models import load_model, load_tokenizer
from . import Progress, SamplingParams


class HFSampler:
    def __init__(self, model_path: str, backend_cfg, model_cfg, device: str):
        self.device = device
        self.batch_size = backend_cfg.batch_size
        self.tokenizer = load_tokenizer(model_path, model_cfg.trust_remote_code, padding_side="left")
        self.model = load_model(model_path, model_cfg.dtype, device, model_cfg.trust_remote_code).eval()

    @torch.inference_mode()
    def generate(self, prompts: list[str], params: SamplingParams, progress: Progress = None) -> list[list[str]]:
        # Similar lengths share a batch (less padding); results are returned in input order.
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        per_batch = max(1, self.batch_size // params.n)
        results: list[list[str]] = [[] for _ in prompts]
        sample = params.temperature > 0
        for b, start in enumerate(range(0, len(order), per_batch)):
            idx = order[start:start + per_batch]
            enc = self.tokenizer([prompts[i] for i in idx], return_tensors="pt", padding=True).to(self.device)
            # Seeded per batch: the same prompts and params give the same samples on a rerun.
            torch.manual_seed(params.seed * 1_000_003 + b)
            out = self.model.generate(
                **enc,
                do_sample=sample,
                temperature=params.temperature if sample else None,
                top_p=params.top_p if sample else None,
                top_k=params.top_k if sample else None,
                num_return_sequences=params.n,
                max_new_tokens=params.max_new_tokens,
                pad_token_id=self.tokenizer.pad_token_id,
                eos_token_id=self.tokenizer.eos_token_id,
                use_cache=True,
            )
            texts = self.tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
            for j, i in enumerate(idx):
                results[i] = texts[j * params.n:(j + 1) * params.n]
            if progress:
                progress(len(idx))
        return results

    def close(self) -> None:
        del self.model
