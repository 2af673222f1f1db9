"""The transformers sampling path: k samples per prompt share one prefill of the prompt (its KV
cache repeated k times, in a reserved cache) and give exactly what `generate` gives on k copies of
each prompt with the default cache, on left-padded prompts of different lengths, in plain text and
in a chat template; greedy decoding is transformers' own; the inverse-CDF draw samples the
softmax's distribution and never a token that top-k or top-p cut."""
import pytest
import torch

from selfimprove.backends import SamplingParams
from selfimprove.backends.decoding import InverseCDFSampler, sampling_processors
from selfimprove.backends.hf import batched_generate
from selfimprove.config import TinyModelConfig
from selfimprove.models import load_model, load_tokenizer, render_prompts
from tests.helpers import chat_template

PROMPTS = ["Q: 1+2\nA:", "Q: 345+67\nA:", "Q: 9+9\nA:", "Q: 12345+678\nA:"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from selfimprove.models.tiny import save_tiny

    path = save_tiny(TinyModelConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64),
                     tmp_path_factory.mktemp("m") / "base", seed=0)
    return load_model(str(path), "float32", "cpu"), load_tokenizer(str(path), padding_side="left")


def expanded(model, tok, prompts, params, chat=False):
    """The reference: k copies of every prompt in one generate call, each prefilled on its own,
    with transformers' concatenating cache and the same logits processors."""
    texts = render_prompts(tok, prompts, chat)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    enc = tok([texts[i] for i in order for _ in range(params.n)], return_tensors="pt", padding=True,
              add_special_tokens=not chat)
    torch.manual_seed(params.seed * 1_000_003)
    with torch.inference_mode():
        out = model.generate(**enc, do_sample=False, temperature=None, top_p=None, top_k=None,
                             logits_processor=sampling_processors(params.temperature, params.top_k, params.top_p),
                             max_new_tokens=params.max_new_tokens, pad_token_id=tok.pad_token_id,
                             eos_token_id=tok.eos_token_id, use_cache=True)
    decoded = tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    result = [None] * len(prompts)
    for j, i in enumerate(order):
        result[i] = decoded[j * params.n:(j + 1) * params.n]
    return result


@pytest.mark.parametrize("temperature,top_p,top_k", [(1.0, 1.0, 0), (0.7, 0.9, 0), (0.7, 1.0, 5)])
def test_shared_prefill_samples_what_expanded_prompts_sample(tiny, temperature, top_p, top_k):
    model, tok = tiny
    params = SamplingParams(n=3, temperature=temperature, top_p=top_p, top_k=top_k, max_new_tokens=10, seed=4)
    got = batched_generate(model, tok, PROMPTS, params, batch_size=64)
    assert got == expanded(model, tok, PROMPTS, params)
    assert len({t for texts in got for t in texts}) > len(PROMPTS)  # sampled: the k samples differ


def test_shared_prefill_in_a_chat_template(tiny, tmp_path):
    model, tok = tiny
    template = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{% endfor %}"
                "{% if add_generation_prompt %}<|assistant|>{% endif %}")
    params = SamplingParams(n=2, temperature=1.0, max_new_tokens=8, seed=1)
    with chat_template(tok, template):
        assert batched_generate(model, tok, PROMPTS, params, batch_size=64, chat=True) == \
            expanded(model, tok, PROMPTS, params, chat=True)


@pytest.mark.parametrize("temperature,top_p", [(1.0, 1.0), (0.7, 0.9)])
def test_rows_that_ended_leave_the_batch_without_changing_any_sample(tiny, temperature, top_p):
    """The EOS logit raised (a hook on the output layer) so that rows end at different steps: the
    decoding loop drops ended rows from the batch and its cache as it goes, and every sample is
    still the one transformers' generate draws with all rows kept to the end. (Greedy decoding
    takes the same path with an argmax; an untrained model's greedy rows all end alike.)"""
    model, tok = tiny
    bias = torch.zeros(model.config.vocab_size)
    bias[tok.eos_token_id] = 3.0
    hook = model.lm_head.register_forward_hook(lambda module, args, out: out + bias)
    try:
        prompts = PROMPTS * 3
        params = SamplingParams(n=2, temperature=temperature, top_p=top_p, max_new_tokens=16, seed=7)
        got = batched_generate(model, tok, prompts, params, batch_size=64)
        assert got == expanded(model, tok, prompts, params)
    finally:
        hook.remove()
    lengths = [len(t) for texts in got for t in texts]
    assert min(lengths) < max(lengths) and max(lengths) > 0  # rows did end at different steps


def test_greedy_decoding_is_transformers_own(tiny):
    model, tok = tiny
    params = SamplingParams(n=1, temperature=0.0, max_new_tokens=12, seed=0)
    assert batched_generate(model, tok, PROMPTS, params, batch_size=64) == \
        batched_generate(model, tok, PROMPTS, params, batch_size=64, plain=True)


def test_greedy_rows_that_end_at_different_steps_are_transformers_own(tiny):
    """Greedy decoding through the loop that drops ended rows, on rows that end at different steps
    and whose tokens depend on their context. An untrained model at its initial scale writes the
    same token everywhere, so a copy has its weights scaled up 20x (its greedy text then differs by
    prompt and position), and the EOS logit is raised (a hook on the output layer) by the first
    amount at which transformers' own greedy rows end at three or more different steps. At that
    amount every row must be transformers' own."""
    import copy

    base, tok = tiny
    model = copy.deepcopy(base)
    with torch.no_grad():
        for name, weight in model.named_parameters():
            if "norm" not in name:
                weight.mul_(20.0)
    prompts, params = PROMPTS * 3, SamplingParams(n=1, temperature=0.0, max_new_tokens=16, seed=0)
    bias = torch.zeros(model.config.vocab_size)
    model.lm_head.register_forward_hook(lambda module, args, out: out + bias)
    for amount in [a / 2 for a in range(41)]:
        bias[tok.eos_token_id] = amount
        reference = batched_generate(model, tok, prompts, params, batch_size=64, plain=True)
        if len({len(texts[0]) for texts in reference}) >= 3:
            break
    else:
        pytest.fail("no EOS bias up to 20 made greedy rows end at three different steps")
    assert batched_generate(model, tok, prompts, params, batch_size=64) == reference


def test_inverse_cdf_draws_follow_the_softmax_and_skip_cut_tokens():
    # token 0 has probability 0 (cut by top-k or top-p: -inf), the rest 0.1 / 0.2 / 0.3 / 0.4
    probs = torch.tensor([0.0, 0.1, 0.2, 0.3, 0.4])
    rows = 200_000
    scores = probs.log().expand(rows, -1).clone()
    torch.manual_seed(0)
    out = InverseCDFSampler()(None, scores)
    assert ((out == 0).sum(-1) == 1).all() and (out.isinf().sum(-1) == 4).all()  # one finite token per row
    counts = torch.bincount(out.argmax(-1), minlength=5).double()
    assert counts[0] == 0
    expected = probs.double() * rows
    sigma = (rows * probs.double() * (1 - probs.double())).sqrt()
    assert ((counts[1:] - expected[1:]).abs() < 5 * sigma[1:]).all(), counts
