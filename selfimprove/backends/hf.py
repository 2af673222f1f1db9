"""transformers models as a sampling engine: batched, KV-cached, k samples per prompt, each
prompt prefilled once, the prefix all prompts of a call share (few-shot exemplars, a chat
template's system part, a judge's template) prefilled once for the whole call, a decoding loop
that drops rows once they ended, with a reserved KV cache and an inverse-CDF draw (decoding.py).
The samples are those of transformers' `generate` on each prompt (tests/unit/test_hf_sampling.py,
test_prefix_cache.py; on SmolLM2 tests/realmodel)."""
from __future__ import annotations

import gc
import os

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from .. import compute
from ..models import load_model, load_tokenizer, render_prompts
from . import Progress, SamplingParams, SamplingRefused
from .decoding import inverse_cdf, reserved_cache, sampling_processors


@torch.inference_mode()
def batched_generate(model, tokenizer, prompts: list[str], params: SamplingParams, batch_size: int,
                     progress: Progress = None, chat: bool = False, plain: bool = False,
                     share_prefix: bool = True) -> list[list[str]]:
    """k completions per prompt, `batch_size` sequences per batch. The tokenizer must pad
    on the left. Also used on in-memory models (validation during training). plain=True (benchmarks
    and tests only) is transformers' own path: `num_return_sequences=k`, which prefills every
    sample's copy of its prompt, the concatenating cache and `torch.multinomial`. share_prefix=False
    (benchmarks and tests) prefills every prompt whole: the same samples, more prefill."""
    prompts = render_prompts(tokenizer, prompts, chat)
    # Similar lengths share a batch (less padding); results are returned in input order.
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    per_batch = max(1, batch_size // params.n)
    results: list[list[str]] = [[] for _ in prompts]
    # a chat template already holds the special tokens: do not add a second BOS
    ids = tokenizer(prompts, add_special_tokens=not chat)["input_ids"] if prompts else []
    check_context(model, ids, params.max_new_tokens)
    was_training = model.training
    model.eval()
    compute.note_params(compute.count_params(model))
    eos_ids = _eos_ids(tokenizer)
    prefix = SharedPrefix(model, ids if share_prefix and not plain else [])
    compute.add(tokens_prompt=prefix.length)  # computed once for the call
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_ids[0]
    for b, start in enumerate(range(0, len(order), per_batch)):
        idx = order[start:start + per_batch]
        out = failed = None
        try:
            out, width, prompt_tokens = _sample_batch(model, tokenizer, [prompts[i] for i in idx],
                                                      [ids[i] for i in idx], prefix, params, b, pad, chat, plain)
        except RuntimeError as err:  # torch.OutOfMemoryError is one
            if not _out_of_memory(err):
                raise
            failed = str(err).strip().splitlines()[0][:200]
        if out is None:  # outside the except block, so the failed batch's tensors are freed first
            advice = _memory_advice(model, tokenizer, [prompts[i] for i in idx], [ids[i] for i in idx], prefix, params,
                                    b, pad, chat, plain, batch_size, failed)
            model.train(was_training)
            raise SamplingRefused(advice)
        _, completion_tokens = compute.sample_counts(torch.ones(1, 0), out, width, 1, eos_ids)
        compute.add(tokens_prompt=prompt_tokens, tokens_completion=completion_tokens)
        texts = tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)
        for j, i in enumerate(idx):
            results[i] = texts[j * params.n:(j + 1) * params.n]
        if progress:
            progress(len(idx))
    model.train(was_training)
    return results


def check_context(model, ids: list[list[int]], max_new_tokens: int) -> None:
    """Refuse, before any sampling, prompts that with the new tokens run past the model's
    context (max_position_embeddings): the model would index past its position table or attend
    over positions it never saw."""
    cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    limit = getattr(cfg, "max_position_embeddings", None)
    if not ids or not limit:
        return
    lengths = [len(x) for x in ids]
    longest = max(lengths)
    if longest + max_new_tokens > limit:
        over = sum(n + max_new_tokens > limit for n in lengths)
        raise SamplingRefused(
            f"{over} of {len(ids)} prompts do not fit the model's context: the longest is {longest} tokens (few-shot "
            f"exemplars and chat template included) + max_new_tokens={max_new_tokens} = {longest + max_new_tokens} "
            f"tokens, more than max_position_embeddings={limit}. Use fewer exemplars (task.num_fewshot) or fewer new "
            f"tokens (the sampling stage's max_new_tokens: generate.max_new_tokens, evaluate.max_new_tokens, ...), so "
            f"that prompt + new tokens <= {limit}.")


class SharedPrefix:
    """The tokens every prompt of a call starts with, and their keys and values, computed once.

    The prefix is the longest common prefix of the prompts' own token ids (each prompt tokenized
    whole), so it is by construction what every prompt's tokenization starts with: where the
    tokenizer splits the text differently at the join (a shared text prefix ending inside a
    token), the shared part simply stops before that token. At least one token of each prompt is
    left out of it, since generate must run a prompt's last token to get its first logits.
    Nothing is shared (length 0) for a model with other than plain full-attention cache layers
    (sliding windows, recurrent states), where copying a prefix cache is not known to be exact."""

    def __init__(self, model, ids: list[list[int]]):
        self.length, self.kv = 0, []
        if not ids:
            return
        length = min(len(os.path.commonprefix(ids)), min(len(x) for x in ids) - 1)
        cache = DynamicCache(config=model.config)
        if length <= 0 or not cache.layers or any(type(layer) is not DynamicLayer for layer in cache.layers):
            return
        self.tokens = ids[0][:length]
        tokens = torch.tensor([self.tokens], device=model.device)
        model(input_ids=tokens, cache=cache, use_cache=True, logits_to_keep=1)
        self.length, self.kv = length, [(layer.keys, layer.values) for layer in cache.layers]


def _sample_batch(model, tokenizer, texts, ids, prefix: SharedPrefix, params: SamplingParams, b: int, pad: int,
                  chat: bool, plain: bool):
    """One generate call on one batch of prompts: (output ids, prompt width, prompt tokens run)."""
    # Seeded per batch: the same prompts and params give the same samples on a rerun.
    torch.manual_seed(params.seed * 1_000_003 + b)
    sample = params.temperature > 0
    if plain:
        enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=not chat).to(model.device)
        out = model.generate(**enc, num_return_sequences=params.n, do_sample=sample,
                             temperature=params.temperature if sample else None,
                             top_p=params.top_p if sample else None, top_k=params.top_k if sample else None,
                             max_new_tokens=params.max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                             eos_token_id=tokenizer.eos_token_id, use_cache=True)
        return out, enc["input_ids"].shape[1], int(enc["attention_mask"].sum()) * params.n
    input_ids, mask = _layout(ids, prefix, pad, model.device)
    out = _decode(model, **_prefilled(model, input_ids, mask, prefix, params.n, params.max_new_tokens), params=params,
                  eos_ids=_eos_ids(tokenizer), pad=pad)
    return out, input_ids.shape[1], sum(len(x) for x in ids) - prefix.length * len(ids)


def _eos_ids(tokenizer) -> list[int]:
    eos = tokenizer.eos_token_id
    return [int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos]) if e is not None]


def _decode(model, input_ids, attention_mask, cache, params: SamplingParams, eos_ids: list[int], pad: int):
    """generate's sampling loop for prefilled prompts (the cache holds all but each row's last
    token), less its work on finished rows: generate runs every row until the last one ends, and
    with short answers in a batch most row-steps were spent on rows already past their EOS. Here
    the rows that ended leave the batch (their cache rows too) once they are a quarter of it.

    The samples are generate's: the same warpers (decoding.sampling_processors), greedy = the
    argmax of the float32 logits, each sampling step draws one uniform per row of the whole
    batch, finished rows included, as InverseCDFSampler in generate does, and a row's computation
    does not depend on which other rows are in the batch. Returns generate's output: the prompt
    ids, then each row's tokens up to its EOS, then `pad`."""
    rows, width = input_ids.shape
    processors = sampling_processors(params.temperature, params.top_k, params.top_p)
    warpers, sample = list(processors)[:-1], bool(len(processors))
    new = input_ids.new_full((rows, params.max_new_tokens), pad)
    mask = torch.cat([attention_mask, attention_mask.new_ones(rows, params.max_new_tokens)], 1)
    eos = torch.tensor(eos_ids, device=input_ids.device)
    present = torch.arange(rows, device=input_ids.device)  # the batch's rows, by original index
    alive = torch.ones(rows, dtype=torch.bool, device=input_ids.device)  # of present: not ended yet
    tokens = input_ids[:, -1:]
    positions = attention_mask.sum(-1, keepdim=True) - 1  # generate's rule: real tokens before, counted
    for step in range(params.max_new_tokens):
        logits = model(input_ids=tokens, attention_mask=mask[present, :width + step], position_ids=positions,
                       cache=cache, use_cache=True, logits_to_keep=1).logits[:, -1, :].float()
        if sample:
            rand = torch.rand(rows, 1, device=logits.device)  # every row's draw, as generate makes them
            for warp in warpers:
                logits = warp(None, logits)
            token = inverse_cdf(logits, rand[present])[:, 0]
        else:
            token = logits.argmax(-1)
        new[present[alive], step] = token[alive]
        alive &= ~torch.isin(token, eos)
        if not alive.any():
            break
        if (~alive).sum() * 4 >= len(present):  # copying the cache costs about a step
            keep = alive.nonzero()[:, 0]
            cache.batch_select_indices(keep)
            present, alive, token, positions = present[keep], alive[keep], token[keep], positions[keep]
        tokens, positions = token[:, None], positions + 1
    return torch.cat([input_ids, new], 1)


def _layout(ids: list[list[int]], prefix: SharedPrefix, pad: int, device):
    """[shared prefix | padding | rest of the prompt] per row, with its attention mask. Without a
    shared prefix this is plain left padding. The pads sit where no real token is, so with the
    positions counted over real tokens only (_prefilled, and generate's own rule) every real token
    has the position and the context it has in its prompt alone."""
    p = prefix.length
    width = p + max(len(x) - p for x in ids)
    input_ids = torch.full((len(ids), width), pad, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    input_ids[:, :p] = torch.tensor(ids[0][:p], dtype=torch.long)
    mask[:, :p] = 1
    for j, row in enumerate(ids):
        rest = row[p:]
        input_ids[j, width - len(rest):] = torch.tensor(rest, dtype=torch.long)
        mask[j, width - len(rest):] = 1
    return input_ids.to(device), mask.to(device)


def _prefilled(model, input_ids, mask, prefix: SharedPrefix, n: int, new_tokens: int) -> dict:
    """generate's inputs for n samples per prompt with each prompt's KV cache computed once and
    repeated n times, where `num_return_sequences=n` would prefill n copies of every prompt (with
    few-shot prompts prefill is most of the work). The shared prefix's keys and values are copied
    into every row; the rest of each prompt but its last token is run here (only the last
    position's logits are made: the others would be a [rows, width, vocab] tensor nobody reads);
    generate, given the cache and the full inputs, runs only that last token, so its first step is
    unchanged. Position ids follow generate's own rule (count the real tokens; pads get 1). The
    cache reserves room for the new tokens (decoding.ReservedLayer). Measured with
    scripts/bench_sampling.py."""
    rows, width, p = input_ids.shape[0], input_ids.shape[1], prefix.length
    cache = reserved_cache(model, width - p + new_tokens + 1)
    for layer, (keys, values) in zip(cache.layers, prefix.kv):
        layer.update(keys.expand(rows, -1, -1, -1), values.expand(rows, -1, -1, -1))
    if width - p > 1:
        positions = mask.cumsum(-1) - 1
        positions.masked_fill_(mask == 0, 1)
        model(input_ids=input_ids[:, p:-1], attention_mask=mask[:, :-1], position_ids=positions[:, p:-1],
              cache=cache, use_cache=True, logits_to_keep=1)
    cache.batch_repeat_interleave(n)
    return {"input_ids": input_ids.repeat_interleave(n, 0), "attention_mask": mask.repeat_interleave(n, 0),
            "cache": cache}


def _out_of_memory(err: BaseException) -> bool:
    """torch's allocation failures: CUDA's OutOfMemoryError, the CPU allocator's RuntimeError."""
    text = str(err).lower()
    return isinstance(err, torch.OutOfMemoryError) or any(
        s in text for s in ("out of memory", "can't allocate memory", "not enough memory", "failed to allocate"))


def _memory_advice(model, tokenizer, texts, ids, prefix, params, b, pad, chat, plain, batch_size, failed) -> str:
    """The refusal for a batch that did not fit, with a batch size that does: the same batch's
    first half, quarter, ... is sampled until one fits (nothing of it is kept; the stage's
    finished chunks are already saved, and a rerun with the new size resumes after them). The
    advice is half the size that fitted: that trial ran on one batch, and the next batch can need
    more (longer prompts, a heap fragmented by the batches before it; a rerun at exactly the size
    that fitted was once refused again at its second batch)."""
    rows = len(ids)
    fits = None
    while rows > 1 and fits is None:
        rows //= 2
        gc.collect()
        try:
            _sample_batch(model, tokenizer, texts[:rows], ids[:rows], prefix, params, b, pad, chat, plain)
            fits = rows * params.n
        except RuntimeError as err:
            if not _out_of_memory(err):
                raise
    lead = (f"backend.batch_size={batch_size} does not fit in memory: sampling batch {b} ({len(ids)} prompts x "
            f"{params.n} samples, prompts up to {max(len(x) for x in ids)} tokens, max_new_tokens="
            f"{params.max_new_tokens}) failed ({failed}).")
    tail = ("Chunks of the stage already sampled are saved; rerunning the same command with the new setting resumes "
            "after them.")
    if fits:
        advice = max(params.n, fits // 2)  # never below one prompt's samples, the smallest batch
        return f"{lead} {fits} sequences fit in a trial: set backend.batch_size={advice} (or lower). {tail}"
    return (f"{lead} Even one prompt's {params.n} samples do not fit: lower the samples per prompt (generate.k) or "
            f"max_new_tokens, or use a machine with more memory. {tail}")


class HFSampler:
    def __init__(self, model_path: str, backend_cfg, model_cfg, device: str, model=None, tokenizer=None,
                 chat: bool | None = None, share_prefix: bool = True):
        self.batch_size = backend_cfg.batch_size
        self.chat = model_cfg.chat_template if chat is None else chat
        self.share_prefix = share_prefix
        self.tokenizer = tokenizer or load_tokenizer(model_path, model_cfg.trust_remote_code, padding_side="left")
        self.model = model if model is not None else load_model(model_path, model_cfg.dtype, device,
                                                                model_cfg.trust_remote_code).eval()
        compute.note_params(compute.count_params(self.model))  # also when every chunk is resumed from disk

    def generate(self, prompts: list[str], params: SamplingParams, progress: Progress = None) -> list[list[str]]:
        return batched_generate(self.model, self.tokenizer, prompts, params, self.batch_size, progress, self.chat,
                                share_prefix=self.share_prefix)

    def close(self) -> None:
        del self.model
