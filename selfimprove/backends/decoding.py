"""Two pieces of transformers' sampling loop, replaced where they cost the most on a CPU.

Profiled on SmolLM2-135M (64 sequences, 48 new tokens), `generate` spends 15% of its time in
`torch.multinomial`, which draws one exponential per vocabulary entry (49k) per token, and 13% in
the KV cache's `torch.cat`, which copies every layer's whole cache at every step. Here:

- `InverseCDFSampler` draws each token from one uniform per row and the cumulative distribution
  (the same distribution, a different use of the random stream). It runs as the last logits
  processor and leaves only the drawn token finite, so `generate` is called greedy and its argmax
  picks that token; the temperature / top-k / top-p warpers before it are transformers' own.
- `ReservedLayer` keeps a layer's keys and values in a buffer with room for the whole generation:
  each step writes its slot, and attention reads a view of the filled part.
"""
from __future__ import annotations

import torch
from transformers import (DynamicCache, LogitsProcessor, LogitsProcessorList, TemperatureLogitsWarper,
                          TopKLogitsWarper, TopPLogitsWarper)
from transformers.cache_utils import DynamicLayer


class InverseCDFSampler(LogitsProcessor):
    """One token per row, drawn with probability softmax(scores): the first index whose cumulative
    probability reaches u * total, u uniform in (0, 1]. A token of probability 0 (cut by top-k or
    top-p) adds nothing to the cumulative sum, so it is never the first to reach u > 0."""

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        token = inverse_cdf(scores, torch.rand(scores.shape[0], 1, device=scores.device))
        return torch.full_like(scores, float("-inf")).scatter_(1, token, 0.0)


def inverse_cdf(scores: torch.Tensor, rand: torch.Tensor) -> torch.Tensor:
    """The [rows, 1] tokens InverseCDFSampler draws from `scores` given its uniforms `rand` in
    [0, 1) ([rows, 1]): a decoding loop that skips finished rows passes the same draws."""
    cdf = scores.float().softmax(-1).cumsum_(-1)
    u = (1.0 - rand) * cdf[:, -1:]
    return torch.searchsorted(cdf, u).clamp_(max=cdf.shape[-1] - 1)


def sampling_processors(temperature: float, top_k: int, top_p: float) -> LogitsProcessorList:
    """What `generate(do_sample=True, ...)` applies, in its order, ending in the draw; empty for
    greedy decoding (temperature 0)."""
    if temperature <= 0:
        return LogitsProcessorList()
    warpers = [TemperatureLogitsWarper(temperature)] if temperature != 1.0 else []
    if top_k:
        warpers.append(TopKLogitsWarper(top_k))
    if top_p < 1.0:
        warpers.append(TopPLogitsWarper(top_p))
    return LogitsProcessorList([*warpers, InverseCDFSampler()])


class ReservedLayer(DynamicLayer):
    """A `DynamicLayer` whose keys and values live in a buffer `reserve` tokens longer than the
    prompt. A step writes its token's slot in place; `torch.cat` would copy the whole cache. When
    the batch changes (the prefill's cache repeated k times) or the room runs out, the buffer is
    made again, once."""

    def __init__(self, reserve: int):
        super().__init__()
        self.reserve = reserve
        self._buffers: tuple[torch.Tensor, torch.Tensor] | None = None

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        filled = self.get_seq_length()
        end = filled + key_states.shape[-2]
        keys, values = self._buffers or (None, None)
        if (keys is None or end > keys.shape[-2] or keys.shape[0] != key_states.shape[0]
                or (filled and self.keys.data_ptr() != keys.data_ptr())):
            shape = (*key_states.shape[:-2], end + self.reserve)
            keys = key_states.new_empty(*shape, key_states.shape[-1])
            values = value_states.new_empty(*shape, value_states.shape[-1])
            if filled:
                keys[..., :filled, :] = self.keys
                values[..., :filled, :] = self.values
            self._buffers = keys, values
        keys[..., filled:end, :] = key_states
        values[..., filled:end, :] = value_states
        self.keys, self.values = keys[..., :end, :], values[..., :end, :]
        return self.keys, self.values

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep these rows (finished ones dropped by the decoding loop), buffer room included, so
        that the next step writes in place again."""
        if self._buffers is None or not self.get_seq_length():
            return super().batch_select_indices(indices)
        filled = self.get_seq_length()
        keys, values = (buffer.index_select(0, indices) for buffer in self._buffers)
        self._buffers = keys, values
        self.keys, self.values = keys[..., :filled, :], values[..., :filled, :]


def reserved_cache(model, reserve: int) -> DynamicCache:
    """The model's usual DynamicCache with each full-attention layer reserving `reserve` tokens
    (sliding-window and other layer kinds are left as transformers makes them)."""
    cache = DynamicCache(config=model.config)
    cache.layers = [ReservedLayer(reserve) if type(layer) is DynamicLayer else layer for layer in cache.layers]
    return cache
