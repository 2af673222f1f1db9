"""The vLLM backend: argument mapping without a GPU; the real engine only where vLLM and CUDA exist."""
import importlib.util

import pytest
import torch

from selfimprove.backends import SamplingParams, build_sampler
from selfimprove.backends.vllm import BackendUnavailable, engine_kwargs, prompt_tokens_run, sampling_kwargs
from selfimprove.config import ModelConfig, VLLMBackendConfig


def test_sampling_params_mapping():
    greedy = sampling_kwargs(SamplingParams(n=1, temperature=0.0, top_p=0.9, top_k=40, max_new_tokens=64, seed=3), 5)
    assert greedy == {"n": 1, "temperature": 0.0, "max_tokens": 64, "seed": 3 * 1_000_003 + 5}
    sampled = sampling_kwargs(SamplingParams(n=32, temperature=0.7, top_p=0.95, top_k=40, max_new_tokens=128), 0)
    assert sampled == {"n": 32, "temperature": 0.7, "max_tokens": 128, "seed": 0, "top_p": 0.95, "top_k": 40}
    assert "top_k" not in sampling_kwargs(SamplingParams(n=4, temperature=1.0, top_k=0), 0)


def test_engine_mapping():
    cfg = VLLMBackendConfig(gpu_memory_utilization=0.5, tensor_parallel_size=2, max_model_len=2048)
    kw = engine_kwargs("/ckpt", cfg, ModelConfig(dtype="bfloat16"))
    assert kw["model"] == kw["tokenizer"] == "/ckpt" and kw["tensor_parallel_size"] == 2
    assert kw["gpu_memory_utilization"] == 0.5 and kw["max_model_len"] == 2048 and kw["dtype"] == "bfloat16"
    assert kw["trust_remote_code"] is False
    assert kw["enable_prefix_caching"] is True  # a stage's prompts share their exemplars
    assert "max_model_len" not in engine_kwargs("/ckpt", VLLMBackendConfig(), ModelConfig())


def test_prompt_tokens_count_what_the_prefix_cache_did_not_hold():
    """vLLM's RequestOutput.num_cached_tokens: prompt tokens found in the prefix cache, not run."""
    from types import SimpleNamespace as Output  # the two attributes read, as vLLM's RequestOutput has them

    inputs = [{"prompt_token_ids": list(range(10))}, {"prompt_token_ids": list(range(12))},
              {"prompt_token_ids": list(range(7))}]
    outputs = [Output(num_cached_tokens=0), Output(num_cached_tokens=8), Output(num_cached_tokens=None)]
    assert prompt_tokens_run(inputs, outputs) == 10 + (12 - 8) + 7


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None and torch.cuda.is_available(),
                    reason="vLLM and a GPU are present: the real path is tested below")
def test_clear_message_without_vllm_or_gpu():
    with pytest.raises(BackendUnavailable, match="backend=hf"):
        build_sampler(VLLMBackendConfig(), "/nowhere", ModelConfig(), "cpu")


@pytest.mark.gpu
@pytest.mark.skipif(importlib.util.find_spec("vllm") is None or not torch.cuda.is_available(),
                    reason="needs vLLM and a CUDA GPU")
def test_vllm_matches_interface_on_a_tiny_model(tmp_path):
    from selfimprove.config import TinyModelConfig
    from selfimprove.models.tiny import save_tiny

    path = save_tiny(TinyModelConfig(), tmp_path / "tiny", seed=0)
    sampler = build_sampler(VLLMBackendConfig(gpu_memory_utilization=0.3), str(path), ModelConfig(), "cuda")
    outs = sampler.generate(["Q: 1+2\nA:", "Q: 3+4\nA:"], SamplingParams(n=3, temperature=1.0, max_new_tokens=8))
    sampler.close()
    assert [len(o) for o in outs] == [3, 3] and all(isinstance(t, str) for o in outs for t in o)
