"""Training rows against `max_length`, before any training starts.

TRL truncates a row longer than `max_length` from the end, which cuts the completion and its EOS
(the model then never learns to stop), and drops rows left with no completion token at all: with
a long few-shot prompt every row goes, and torch fails deep inside with "num_samples=0". We count
the rows as TRL will tokenize them (chat template included) and stop with the number to set.
"""
from __future__ import annotations

from ..errors import StageError


def row_tokens(tokenizer, rows: list[dict]) -> list[int]:
    """Tokens of the longest sequence each row trains on: prompt + completion (SFT), or prompt +
    the longer of chosen / rejected (DPO); conversational rows through the chat template. Batched:
    the Self-Rewarding seed set has ~16k rows."""
    if not rows:
        return []
    keys = [k for k in ("completion", "chosen", "rejected") if k in rows[0]]
    if not keys:  # prompts only (GRPO samples its completions): the prompt is what is known up front
        if isinstance(rows[0]["prompt"], list):
            return [len(ids) for ids in _ids(tokenizer.apply_chat_template([r["prompt"] for r in rows], tokenize=True))]
        return [len(ids) for ids in tokenizer([r["prompt"] for r in rows], add_special_tokens=True)["input_ids"]]
    if isinstance(rows[0]["prompt"], list):  # conversational: the template adds the special tokens
        per_key = [[len(ids) for ids in _ids(tokenizer.apply_chat_template([r["prompt"] + r[k] for r in rows],
                                                                          tokenize=True))] for k in keys]
        return [max(n) for n in zip(*per_key)]
    prompts = tokenizer([r["prompt"] for r in rows], add_special_tokens=True)["input_ids"]
    answers = [tokenizer([r[k] for r in rows], add_special_tokens=False)["input_ids"] for k in keys]
    return [len(p) + max(len(a[i]) for a in answers) + 1 for i, p in enumerate(prompts)]  # + 1: the EOS


def _ids(out) -> list:
    # apply_chat_template returns token ids, or a BatchEncoding (transformers 5)
    return out["input_ids"] if hasattr(out, "keys") else out


def check_max_length(name: str, max_length: int | None, tokenizer, rows: list[dict]) -> int:
    """The longest row's token count; a StageError naming how many rows exceed `max_length`."""
    lengths = row_tokens(tokenizer, rows)
    longest = max(lengths, default=0)
    if max_length is not None:
        over = sum(n > max_length for n in lengths)
        if over:
            raise StageError(
                f"{over} of {len(rows)} training rows of '{name}' are longer than {name}.max_length={max_length} "
                f"tokens (the longest has {longest}, chat template included); training on them would cut off their "
                f"answers and end-of-sequence token. Set {name}.max_length={longest} (or more), or "
                f"{name}.max_length=null to take the longest row's length.")
    return longest
