"""The shared-prefix KV cache of the transformers backend: prompts that start alike (few-shot
exemplars, a chat template's system part) have that part prefilled once per call, and every sample
is the one the backend draws without sharing, token for token, in plain text and in a chat
template, sampled and greedy; the prefix is what the prompts' own tokenizations share, also where a
shared text ends inside a token; the counts are the tokens run. Bad input: a prompt past the
model's context and a batch past the memory are refused with the setting to change."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from selfimprove import compute
from selfimprove.backends import SamplingParams, SamplingRefused
from selfimprove.backends.hf import SharedPrefix, batched_generate
from selfimprove.config import TinyModelConfig
from tests.helpers import chat_template
from selfimprove.models import load_model, load_tokenizer

ROOT = Path(__file__).resolve().parents[2]
SHOTS = "".join(f"Q: {a}+{b}\nA: {a + b}\n\n" for a, b in [(12, 7), (3, 45), (61, 20)])
QUESTIONS = ["Q: 1+2\nA:", "Q: 345+67\nA:", "Q: 9+9\nA:", "Q: 12345+678\nA:", "Q: 5+50\nA:"]
PROMPTS = [SHOTS + q for q in QUESTIONS]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from selfimprove.models.tiny import save_tiny

    path = save_tiny(TinyModelConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64),
                     tmp_path_factory.mktemp("m") / "base", seed=0)
    return load_model(str(path), "float32", "cpu"), load_tokenizer(str(path), padding_side="left")


@pytest.mark.parametrize("temperature,n,batch_size", [(1.0, 3, 6), (0.7, 2, 64), (0.0, 1, 2)])
def test_shared_prefix_samples_what_unshared_prefill_samples(tiny, temperature, n, batch_size):
    model, tok = tiny
    params = SamplingParams(n=n, temperature=temperature, top_p=0.95, max_new_tokens=10, seed=2)
    with compute.metering() as shared_meter:
        shared = batched_generate(model, tok, PROMPTS, params, batch_size=batch_size)
    with compute.metering() as whole_meter:
        whole = batched_generate(model, tok, PROMPTS, params, batch_size=batch_size, share_prefix=False)
    assert shared == whole
    if temperature:
        assert len({t for texts in shared for t in texts}) > len(PROMPTS)  # sampled: not all alike
    # counts: the prefix once, each prompt's rest once; the completions are the same tokens
    ids = tok(PROMPTS)["input_ids"]
    p = SharedPrefix(model, ids).length
    assert p >= len(tok(SHOTS + "Q: ")["input_ids"]) - 1 > 0
    assert whole_meter.counts["tokens_prompt"] == sum(map(len, ids))
    assert shared_meter.counts["tokens_prompt"] == sum(map(len, ids)) - p * (len(ids) - 1)
    assert shared_meter.counts["tokens_completion"] == whole_meter.counts["tokens_completion"]


def test_shared_prefix_in_a_chat_template(tiny):
    model, tok = tiny
    template = ("<|system|>You add numbers.{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}"
                "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}")
    params = SamplingParams(n=2, temperature=1.0, max_new_tokens=8, seed=1)
    with chat_template(tok, template):
        assert batched_generate(model, tok, PROMPTS, params, batch_size=4, chat=True) == \
            batched_generate(model, tok, PROMPTS, params, batch_size=4, chat=True, share_prefix=False)


def test_prefix_is_what_the_tokenizations_share_when_the_text_ends_inside_a_token(tmp_path):
    """A BPE tokenizer merges across the end of the common text ("...ab" + "c" vs + "d" may split
    as "abc" / "ab"+"d"): the shared prefix is cut where the token ids part, never at the text's
    end, so no prompt is sampled from tokens it would not have had alone."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "a": 3, "b": 4, "c": 5, "d": 6, "ab": 7, "abc": 8, " ": 9}
    bpe = Tokenizer(models.BPE(vocab=vocab, merges=[("a", "b"), ("ab", "c")]))
    bpe.pre_tokenizer = pre_tokenizers.Split(" ", "isolated")
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, pad_token="<pad>", eos_token="</s>", padding_side="left")
    prompts = ["a ab abc", "a ab abd", "a ab ab"]  # text shared up to "a ab ab"; tokens up to "a ab "
    ids = tok(prompts)["input_ids"]
    assert ids[0][-1] == vocab["abc"] and ids[1][-2:] == [vocab["ab"], vocab["d"]]
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32,
                                         num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=64,
                                         pad_token_id=0, eos_token_id=2, bos_token_id=1)).eval()
    prefix = SharedPrefix(model, ids)
    assert prefix.tokens == tok("a ab ")["input_ids"] and all(row[:prefix.length] == prefix.tokens for row in ids)
    params = SamplingParams(n=3, temperature=1.0, max_new_tokens=6, seed=5)
    assert batched_generate(model, tok, prompts, params, batch_size=9) == \
        batched_generate(model, tok, prompts, params, batch_size=9, share_prefix=False)


def test_a_prompt_past_the_context_is_refused_before_sampling(tiny, monkeypatch):
    from selfimprove.backends import hf

    model, tok = tiny
    limit = model.config.max_position_embeddings
    long_prompt = SHOTS * (limit // len(SHOTS) + 1) + QUESTIONS[0]
    batches = []
    real = hf._sample_batch
    monkeypatch.setattr(hf, "_sample_batch", lambda *args: batches.append(args) or real(*args))
    with pytest.raises(SamplingRefused, match=rf"1 of 2 prompts.*max_new_tokens=16.*max_position_embeddings="
                                              rf"{limit}.*task.num_fewshot.*generate.max_new_tokens"):
        batched_generate(model, tok, [QUESTIONS[0], long_prompt], SamplingParams(max_new_tokens=16), batch_size=1)
    assert not batches  # refused before any batch ran, also the short prompt's
    # exactly at the limit is allowed
    fits = "x" * (limit - 16 - len(tok("")["input_ids"]))  # the special tokens count too
    assert len(tok(fits)["input_ids"]) + 16 == limit
    batched_generate(model, tok, [fits], SamplingParams(max_new_tokens=16), batch_size=4)
    assert len(batches) == 1


MEMORY_SCRIPT = r"""
import resource, sys, torch
from selfimprove.backends import SamplingParams, SamplingRefused
from selfimprove.backends.hf import HFSampler
from selfimprove.config import HFBackendConfig, ModelConfig
torch.set_num_threads(1)
batch_size = int(sys.argv[2])
sampler = HFSampler(sys.argv[1], HFBackendConfig(batch_size=batch_size), ModelConfig(), "cpu")
prompts = ["Q: %d+%d\nA:" % (i, 7 * i) for i in range(64)]
params = SamplingParams(n=64, temperature=1.0, max_new_tokens=100, seed=0)
sampler.generate(prompts[:1], SamplingParams(n=1, max_new_tokens=2))  # warm-up: lazy allocations
# the address space this process holds now, plus ~160 MB for sampling
with open("/proc/self/statm") as f:
    held = int(f.read().split()[0]) * resource.getpagesize()
resource.setrlimit(resource.RLIMIT_AS, (held + (160 << 20), resource.RLIM_INFINITY))
try:
    outs = sampler.generate(prompts, params)
    print("SAMPLED", len(outs))
except SamplingRefused as err:
    print("REFUSED", err)
"""


def test_a_batch_past_the_memory_is_refused_with_a_size_that_fits(tmp_path):
    """A real allocation failure: the sampling process's address space is capped (RLIMIT_AS) a
    little above what it holds, and a batch of 4096 sequences (64 prompts x 64 samples) of the
    vocabulary-wide model needs more; the refusal names a size, and that size samples under the
    same cap."""
    from selfimprove.models.tiny import save_tiny

    path = save_tiny(TinyModelConfig(), tmp_path / "m", seed=0)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}

    def run(batch_size):
        proc = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(path), str(batch_size)], capture_output=True,
                              text=True, env=env, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc.stdout

    out = run(4096)
    assert "REFUSED backend.batch_size=4096 does not fit in memory" in out, out
    import re

    tried, fits = map(int, re.search(r"(\d+) sequences fit in a trial: set backend.batch_size=(\d+)", out).groups())
    assert 64 <= fits < 4096 and fits == max(64, tried // 2) and "resumes" in out  # half: the next batch may need more
    assert "SAMPLED 64" in run(fits)
