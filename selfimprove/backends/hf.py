"""transformers `generate` as a sampling engine: batched, KV-cached, k samples per prompt, each
prompt prefilled once, with a reserved KV cache and an inverse-CDF draw (decoding.py)."""
from __future__ import annotations

import torch

from .. import compute
from ..models import load_model, load_tokenizer, render_prompts
from . import Progress, SamplingParams
from .decoding import reserved_cache, sampling_processors


@torch.inference_mode()
def batched_generate(model, tokenizer, prompts: list[str], params: SamplingParams, batch_size: int,
                     progress: Progress = None, chat: bool = False, plain: bool = False) -> list[list[str]]:
    """k completions per prompt, `batch_size` sequences per `generate` call. The tokenizer must pad
    on the left. Also used on in-memory models (validation during training). plain=True (benchmarks
    and tests only) is transformers' own path: `num_return_sequences=k`, which prefills every
    sample's copy of its prompt, the concatenating cache and `torch.multinomial`."""
    prompts = render_prompts(tokenizer, prompts, chat)
    # Similar lengths share a batch (less padding); results are returned in input order.
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    per_batch = max(1, batch_size // params.n)
    results: list[list[str]] = [[] for _ in prompts]
    sample = params.temperature > 0
    was_training = model.training
    model.eval()
    compute.note_params(compute.count_params(model))
    eos = tokenizer.eos_token_id
    eos_ids = [int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos]) if e is not None]
    for b, start in enumerate(range(0, len(order), per_batch)):
        idx = order[start:start + per_batch]
        # a chat template already holds the special tokens: do not add a second BOS
        enc = tokenizer([prompts[i] for i in idx], return_tensors="pt", padding=True,
                        add_special_tokens=not chat).to(model.device)
        # Seeded per batch: the same prompts and params give the same samples on a rerun.
        torch.manual_seed(params.seed * 1_000_003 + b)
        if plain:
            out = model.generate(**enc, num_return_sequences=params.n, do_sample=sample,
                                 temperature=params.temperature if sample else None,
                                 top_p=params.top_p if sample else None, top_k=params.top_k if sample else None,
                                 max_new_tokens=params.max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                                 eos_token_id=tokenizer.eos_token_id, use_cache=True)
        else:
            # greedy in generate's eyes: the last processor has drawn the token (InverseCDFSampler)
            out = model.generate(**_prefilled(model, enc, params.n, params.max_new_tokens), do_sample=False,
                                 logits_processor=sampling_processors(params.temperature, params.top_k, params.top_p),
                                 temperature=None, top_p=None, top_k=None, max_new_tokens=params.max_new_tokens,
                                 pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                                 use_cache=True)
        width = enc["input_ids"].shape[1]
        prompt_tokens, completion_tokens = compute.sample_counts(enc["attention_mask"], out, width,
                                                                 params.n if plain else 1, eos_ids)
        compute.add(tokens_prompt=prompt_tokens, tokens_completion=completion_tokens)
        texts = tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)
        for j, i in enumerate(idx):
            results[i] = texts[j * params.n:(j + 1) * params.n]
        if progress:
            progress(len(idx))
    model.train(was_training)
    return results


def _prefilled(model, enc, n: int, new_tokens: int) -> dict:
    """generate's inputs for n samples per prompt with each prompt's KV cache computed once and
    repeated n times, where `num_return_sequences=n` would prefill n copies of every prompt (with
    few-shot prompts prefill is most of the work). All but the last prompt token are cached here;
    generate, given the cache and the full inputs, runs only that last token, so its first step is
    unchanged. Position ids follow generate's own rule for left padding (count the real tokens;
    pads get 1). The cache reserves room for the new tokens (decoding.ReservedLayer). Measured
    with scripts/bench_sampling.py (README, Speed on SmolLM2)."""
    ids, mask = enc["input_ids"], enc["attention_mask"]
    cache = reserved_cache(model, new_tokens + 1)
    if ids.shape[1] > 1:
        positions = mask.long().cumsum(-1) - 1
        positions.masked_fill_(mask == 0, 1)
        cache = model(input_ids=ids[:, :-1], attention_mask=mask[:, :-1], position_ids=positions[:, :-1],
                      cache=cache, use_cache=True).cache
        cache.batch_repeat_interleave(n)
    return {"input_ids": ids.repeat_interleave(n, 0), "attention_mask": mask.repeat_interleave(n, 0), "cache": cache}


class HFSampler:
    def __init__(self, model_path: str, backend_cfg, model_cfg, device: str, model=None, tokenizer=None,
                 chat: bool | None = None):
        self.batch_size = backend_cfg.batch_size
        self.chat = model_cfg.chat_template if chat is None else chat
        self.tokenizer = tokenizer or load_tokenizer(model_path, model_cfg.trust_remote_code, padding_side="left")
        self.model = model if model is not None else load_model(model_path, model_cfg.dtype, device,
                                                                model_cfg.trust_remote_code).eval()
        compute.note_params(compute.count_params(self.model))  # also when every chunk is resumed from disk

    def generate(self, prompts: list[str], params: SamplingParams, progress: Progress = None) -> list[list[str]]:
        return batched_generate(self.model, self.tokenizer, prompts, params, self.batch_size, progress, self.chat)

    def close(self) -> None:
        del self.model
