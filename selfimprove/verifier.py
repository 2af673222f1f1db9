"""Scoring candidate solutions with a V-STaR verifier: the log-likelihood of the solution given
the problem, log V(y|x), as in the paper; per token, or the DPO implicit reward
beta * (log V(y|x) - log ref(y|x)) (without its positive factor beta: a ranking ignores it), as options.

The solution is tokenized the way TRL's DPOTrainer tokenized it for training: prompt and
completion together with the end-of-sequence token appended (conversational rows through the chat
template), the completion starting where the tokenized prompt stops being a prefix.
"""
from __future__ import annotations

from typing import Sequence

import torch

from . import compute
from .models import load_model, load_tokenizer, render_prompts


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def encode(tokenizer, prompt: str, completion: str, chat: bool) -> tuple[list[int], int]:
    """Token ids of prompt + completion and where the completion starts."""
    if chat:
        rendered = render_prompts(tokenizer, [prompt], chat=True)[0]
        full_text = tokenizer.apply_chat_template([{"role": "user", "content": prompt},
                                                   {"role": "assistant", "content": completion}], tokenize=False)
        prompt_ids = tokenizer(rendered, add_special_tokens=False)["input_ids"]
        full = tokenizer(full_text, add_special_tokens=False)["input_ids"]
    else:
        prompt_ids = tokenizer(prompt)["input_ids"]
        full = tokenizer(prompt + completion + (tokenizer.eos_token or ""))["input_ids"]
    return full, _common_prefix(prompt_ids, full)


@torch.inference_mode()
def completion_logprobs(model, tokenizer, prompts: Sequence[str], completions: Sequence[str], batch_size: int,
                        chat: bool = False) -> list[tuple[float, int]]:
    """(sum of log-probabilities, token count) of each completion given its prompt; batched by
    length, returned in input order."""
    encoded = [encode(tokenizer, p, c, chat) for p, c in zip(prompts, completions)]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))
    out: list[tuple[float, int]] = [(0.0, 0)] * len(encoded)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    was_training = model.training
    model.eval()
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        width = max(len(encoded[i][0]) for i in idx)
        ids = torch.full((len(idx), width), pad, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for row, i in enumerate(idx):
            seq = encoded[i][0]
            ids[row, :len(seq)] = torch.tensor(seq)
            mask[row, :len(seq)] = 1
        logits = model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device)).logits.float()
        compute.add(tokens_reference=int(mask.sum()))  # a forward-only pass: 2N per token
        # token t is predicted at position t - 1
        logp = logits[:, :-1].log_softmax(-1).gather(2, ids[:, 1:, None].to(model.device))[..., 0].cpu()
        for row, i in enumerate(idx):
            seq, start_at = encoded[i]
            tokens = logp[row, max(start_at, 1) - 1:len(seq) - 1]
            out[i] = (float(tokens.sum()), int(tokens.numel()))
    model.train(was_training)
    return out


def verifier_scores(cfg, model_cfg, device: str, verifier: str, reference: str | None, prompts: Sequence[str],
                    completions: Sequence[str]) -> list[float]:
    """One score per (prompt, completion) under `cfg.score` (see BestOfKConfig). Identical pairs are
    scored once."""
    unique = list(dict.fromkeys(zip(prompts, completions)))

    def logprobs(path: str) -> list[tuple[float, int]]:
        tokenizer = load_tokenizer(path, model_cfg.trust_remote_code)
        model = load_model(path, model_cfg.dtype, device, model_cfg.trust_remote_code)
        try:
            return completion_logprobs(model, tokenizer, [p for p, _ in unique], [c for _, c in unique],
                                       cfg.batch_size, model_cfg.chat_template)
        finally:
            del model

    v = logprobs(verifier)
    if cfg.score == "logprob":
        scores = [s for s, _ in v]
    elif cfg.score == "mean_logprob":
        scores = [s / max(n, 1) for s, n in v]
    else:  # implicit_reward
        ref = logprobs(reference)
        scores = [s - r for (s, _), (r, _) in zip(v, ref)]  # the implicit reward divided by beta
    by_pair = dict(zip(unique, scores))
    return [by_pair[pc] for pc in zip(prompts, completions)]
