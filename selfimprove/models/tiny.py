"""The embedded default model: a small Llama built from a config, with a character tokenizer.

Both are plain Hugging Face objects saved with `save_pretrained`, so every later stage (and
vLLM, and the user) loads them like any hub checkpoint.
"""
from __future__ import annotations

import string
from pathlib import Path

import torch

SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]
CHARS = sorted(set(string.printable) - set("\r\x0b\x0c"))


def build_tokenizer():
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIALS + CHARS)}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")  # one char = one token
    core.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>",
        model_max_length=4096,
    )


# No positional encoding: RoPE with its frequencies divided by an infinite factor (transformers'
# "linear" scaling) has every inverse frequency 0, so cos = 1 and sin = 0 at every position and the
# rotation is exactly the identity. (rope_theta = inf alone, as in the paper's code, leaves the
# first frequency at 1: inf ** 0 = 1.) The factor is saved in config.json, so loading the
# checkpoint anywhere rebuilds the same NoPE model.
NOPE = {"rope_parameters": {"rope_type": "linear", "factor": float("inf"), "rope_theta": 10000.0}}


def build_model(cfg, tokenizer, seed: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_attention_heads,
        intermediate_size=cfg.intermediate_size,
        max_position_embeddings=cfg.max_position_embeddings,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
        **(NOPE if cfg.nope else {}),
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


def save_tiny(cfg, path: Path, seed: int) -> Path:
    tok = build_tokenizer()
    model = build_model(cfg, tok, seed)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path
