"""The transformers sampling path: k samples per prompt share one prefill of the prompt (its KV
cache repeated k times) and give exactly what `generate(num_return_sequences=k)` gives, on
left-padded prompts of different lengths, in plain text and in a chat template."""
import pytest
import torch

from selfimprove.backends import SamplingParams
from selfimprove.backends.hf import batched_generate
from selfimprove.config import TinyModelConfig
from selfimprove.models import load_model, load_tokenizer, render_prompts

PROMPTS = ["Q: 1+2\nA:", "Q: 345+67\nA:", "Q: 9+9\nA:", "Q: 12345+678\nA:"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from selfimprove.models.tiny import save_tiny

    path = save_tiny(TinyModelConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64),
                     tmp_path_factory.mktemp("m") / "base", seed=0)
    return load_model(str(path), "float32", "cpu"), load_tokenizer(str(path), padding_side="left")


def expanded(model, tok, prompts, params, chat=False):
    """The reference: every sample prefills its own copy of the prompt, one generate call."""
    texts = render_prompts(tok, prompts, chat)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    enc = tok([texts[i] for i in order], return_tensors="pt", padding=True, add_special_tokens=not chat)
    torch.manual_seed(params.seed * 1_000_003)
    with torch.inference_mode():
        out = model.generate(**enc, do_sample=params.temperature > 0, temperature=params.temperature or None,
                             top_p=params.top_p if params.temperature > 0 else None,
                             top_k=params.top_k if params.temperature > 0 else None, num_return_sequences=params.n,
                             max_new_tokens=params.max_new_tokens, pad_token_id=tok.pad_token_id,
                             eos_token_id=tok.eos_token_id, use_cache=True)
    decoded = tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    result = [None] * len(prompts)
    for j, i in enumerate(order):
        result[i] = decoded[j * params.n:(j + 1) * params.n]
    return result


@pytest.mark.parametrize("temperature,top_p", [(1.0, 1.0), (0.7, 0.9)])
def test_shared_prefill_samples_what_expanded_prompts_sample(tiny, temperature, top_p):
    model, tok = tiny
    params = SamplingParams(n=3, temperature=temperature, top_p=top_p, max_new_tokens=10, seed=4)
    got = batched_generate(model, tok, PROMPTS, params, batch_size=64)
    assert got == expanded(model, tok, PROMPTS, params)
    assert len({t for texts in got for t in texts}) > len(PROMPTS)  # sampled: the k samples differ


def test_shared_prefill_in_a_chat_template(tiny, tmp_path):
    model, tok = tiny
    tok.chat_template = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{% endfor %}"
                         "{% if add_generation_prompt %}<|assistant|>{% endif %}")
    try:
        params = SamplingParams(n=2, temperature=1.0, max_new_tokens=8, seed=1)
        assert batched_generate(model, tok, PROMPTS, params, batch_size=64, chat=True) == \
            expanded(model, tok, PROMPTS, params, chat=True)
    finally:
        tok.chat_template = None
