"""Compute accounting: token counts per stage, turned into a FLOPs estimate in one place.

Stages do not count anything themselves. The pipeline opens a `metering()` block around each
stage; the sampler (`backends/hf.py`, `backends/vllm.py`) and the shared trainer (`training/fit.py`)
add what they processed to the innermost open meter. Counted, per stage:

  tokens_prompt      prompt tokens prefilled when sampling: what was run, not what was read.
                     The transformers backend runs each prompt once for its n samples and the
                     prefix a call's prompts share (few-shot exemplars) once for the call; vLLM
                     takes off what its prefix cache held
  tokens_completion  generated tokens up to and including the end-of-sequence token; what the
                     task cuts off afterwards was still generated, so it counts
  tokens_trained     non-pad tokens through forward + backward, summed over optimizer steps
                     (DPO: chosen and rejected sequences, each with its prompt)
  tokens_reference   non-pad tokens through a forward-only pass of a frozen model (DPO's and
                     SCoRe's reference log-probabilities, a verifier's scores)
  params             N, the parameter count of the model the stage ran (all parameters,
                     embeddings included; recorded once per stage)

flops = 2·N·(tokens_prompt + tokens_completion + tokens_reference) + 6·N·tokens_trained: the
usual forward = 2N, forward + backward = 6N per token (Kaplan et al., 2020), ignoring attention's
context-length term and the KV cache (small for short sequences). With LoRA the frozen weights
get no weight gradients, so 6N overstates such a stage by up to a third; it is kept for
comparability across recipes.

A stage that can resume records its counts where its resume state lives (sampling chunk files,
the Trainer's checkpointed state, SCoRe's step history, ReST-EM's val_compute.json), so a
resumed stage reports the same counts as an uninterrupted one.
"""
from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass, field
from typing import Iterator, Optional

COUNTS = ("tokens_prompt", "tokens_completion", "tokens_trained", "tokens_reference")
FORWARD_FLOPS, TRAIN_FLOPS = 2, 6  # per parameter per token


@dataclass
class Meter:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))
    params: Optional[int] = None

    def add(self, **counts: int) -> None:
        for key, value in counts.items():
            if key not in self.counts:
                raise KeyError(f"unknown compute count '{key}'; known: {', '.join(COUNTS)}")
            self.counts[key] += int(value)

    def metrics(self) -> dict:
        """The non-zero counts (a stage that never sampled gets no tokens_prompt=0 noise)."""
        out = {k: v for k, v in self.counts.items() if v}
        if self.params is not None:
            out["params"] = self.params
        return out


_stack: contextvars.ContextVar[tuple[Meter, ...]] = contextvars.ContextVar("selfimprove_meters", default=())


@contextlib.contextmanager
def metering() -> Iterator[Meter]:
    """Count what runs inside the block; on exit the counts are also added to the enclosing meter,
    so an inner block (one sampling chunk) can be saved apart and still reach the stage's total."""
    meter = Meter()
    token = _stack.set(_stack.get() + (meter,))
    try:
        yield meter
    finally:
        _stack.reset(token)
        if (outer := current()) is not None:
            outer.add(**meter.counts)
            if meter.params is not None:
                outer.params = meter.params


def current() -> Optional[Meter]:
    stack = _stack.get()
    return stack[-1] if stack else None


def add(**counts: int) -> None:
    """Add token counts to the innermost open meter (a no-op outside any: e.g. library use)."""
    if (meter := current()) is not None:
        meter.add(**counts)


def note_params(n: int) -> None:
    """The parameter count of the model being run (the last one noted wins)."""
    if (meter := current()) is not None:
        meter.params = int(n)


def count_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def flops(metrics: dict) -> Optional[int]:
    """The FLOPs estimate of one stage's metrics; None when no parameter count was recorded."""
    n = metrics.get("params")
    if not n:
        return None
    forward = sum(int(metrics.get(k) or 0) for k in ("tokens_prompt", "tokens_completion", "tokens_reference"))
    return FORWARD_FLOPS * n * forward + TRAIN_FLOPS * n * int(metrics.get("tokens_trained") or 0)


def with_flops(meter_metrics: dict, stage_metrics: dict) -> dict:
    """A stage's metrics with its compute added: counts the stage reported itself (e.g. restored
    from its checkpoints after a resume) win over the meter's."""
    merged = {**meter_metrics, **stage_metrics}
    if (f := flops(merged)) is not None:
        merged["flops"] = f
    return merged


def cumulative(rows: list[dict]) -> list[dict]:
    """Add `cum_flops` and `cum_seconds` to metrics rows in run order (every stage counts,
    setup and evaluation included; a row without FLOPs adds none)."""
    total_flops, total_seconds = 0, 0.0
    for row in rows:
        total_flops += int(row.get("flops") or 0)
        total_seconds += float(row.get("seconds") or 0.0)
        row["cum_flops"] = total_flops
        row["cum_seconds"] = round(total_seconds, 2)
    return rows


def sample_counts(attention_mask, sequences, prompt_width: int, prefills: int, eos_ids) -> tuple[int, int]:
    """(prompt tokens, completion tokens) of one transformers `generate` call.

    attention_mask: the [prompts, width] mask of the left-padded prompts; sequences: the
    [prompts * n, width + new] output. Prompt tokens are counted once per prefill of each prompt
    (`prefills`: n when every sample prefilled its own copy, 1 when the n samples shared one).
    A completion ends at its first end-of-sequence token (counted); a row without one was
    generated to the end of the output (generate stops only when every row has ended or
    max_new_tokens is reached), so every position counts."""
    import torch

    prompt = int(attention_mask.sum().item()) * prefills
    new = sequences[:, prompt_width:]
    if new.shape[1] == 0:
        return prompt, 0
    eos = torch.zeros_like(new, dtype=torch.bool)
    for e in eos_ids:
        eos |= new == e
    width = new.shape[1]
    first_eos = torch.where(eos.any(1), eos.int().argmax(1) + 1, torch.full_like(new[:, 0], width))
    return prompt, int(first_eos.sum().item())
