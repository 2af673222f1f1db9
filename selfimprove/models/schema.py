"""The `model` section's schema: which model a run starts from, and the tiny model's shape."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional


@dataclass
class TinyModelConfig:
    """The embedded default: a Llama-architecture model built from this config, char tokenizer."""

    hidden_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    intermediate_size: int = 512
    max_position_embeddings: int = 192
    # No positional encoding (NoPE), as in Lee et al. 2025: RoPE's frequencies are scaled by an
    # infinite factor (rope_type linear, factor inf), so every rotation is the identity and the
    # saved config.json alone makes any later loader build the same model.
    nope: bool = False


@dataclass
class ModelConfig:
    # A hub id or a local save_pretrained folder; null builds the tiny model from `tiny`.
    name_or_path: Optional[str] = None
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)
    trust_remote_code: bool = False
    # Wrap every prompt in the tokenizer's chat template as one user turn (instruct models); the
    # training data then becomes conversational, so TRL renders it with the same template.
    chat_template: bool = False
    # auto: float32 on CPU (bf16 is ~30x slower on AVX2 CPUs), bfloat16 on GPU.
    dtype: str = "auto"
    # The one command that gets this model's folder when name_or_path cannot be reached (presets
    # set it; the startup check prints it). null: the generic `huggingface-cli download` advice.
    fetch: Optional[str] = None
