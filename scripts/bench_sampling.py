"""Sampling throughput: the backend's batched path vs one-prompt-at-a-time `generate`, and vs
transformers' own batched `generate` (num_return_sequences, concatenating cache, multinomial).

    python scripts/bench_sampling.py [--model DIR] [--prompts 256] [--k 4] [--max-new-tokens 48]
    python scripts/bench_sampling.py --model ~/.cache/selfimprove/models/SmolLM2-135M-Instruct --chat \
        --batch-size 64 --train-steps 5          # a real model: + training throughput and MFU
    ... --fewshot 4                              # few-shot prompts: what sharing the prefill saves

Both sides run in this process on the same model and prompts, so the printed ratio is
meaningful on a noisy machine. Without --model, an untrained tiny model is built; to measure a
trained one, pass e.g. outputs/star/iter_00/seed_sft/model. Generated lengths are counted from
the decoded completions, so both sides are charged for exactly the tokens they produced.

MFU: this CPU's fp32 peak is measured in the same run with a large matmul (2n^3 FLOPs); sampling
is charged 2N FLOPs per generated token and training (--train-steps, AdamW on batch x length
tokens) 6N per token, N the parameter count (prompt tokens are not counted: a lower bound).
"""
from __future__ import annotations

import argparse
import tempfile
import time

import torch

from selfimprove.backends import SamplingParams
from selfimprove.backends.hf import HFSampler, batched_generate
from selfimprove.config import HFBackendConfig, ModelConfig, TinyModelConfig
from selfimprove.models import render_prompts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model")
    ap.add_argument("--prompts", type=int, default=256)
    ap.add_argument("--k", type=int, default=4, help="samples per prompt")
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--baseline-prompts", type=int, default=32, help="prompts for the slow one-at-a-time side")
    ap.add_argument("--chat", action="store_true", help="prompts in the tokenizer's chat template (instruct models)")
    ap.add_argument("--fewshot", type=int, default=0,
                    help="prefix each prompt with this many worked examples (few-shot prompts: prefill-heavy)")
    ap.add_argument("--train-steps", type=int, default=0, help="also time this many AdamW steps (0: skip)")
    ap.add_argument("--train-batch", type=int, default=4)
    ap.add_argument("--train-length", type=int, default=256)
    ap.add_argument("--peak-n", type=int, default=4096, help="size of the square matmul that measures the peak")
    args = ap.parse_args()

    path = args.model
    if path is None:
        from selfimprove.models.tiny import save_tiny

        path = str(save_tiny(TinyModelConfig(), tempfile.mkdtemp() + "/tiny", seed=0))
    sampler = HFSampler(path, HFBackendConfig(batch_size=args.batch_size), ModelConfig(chat_template=args.chat), "cpu")
    tok, model = sampler.tokenizer, sampler.model
    def problem(i):
        return 137 * i % 9000 + 10, 71 * i % 900 + 5

    shots = "".join(f"Q: {a}+{b}\nA: {a}+{b}={a + b}. The answer is {a + b}.\n\n"
                    for a, b in map(problem, range(10_000, 10_000 + args.fewshot)))
    prompts = [shots + "Q: {}+{}\nA:".format(*problem(i)) for i in range(args.prompts)]
    params = SamplingParams(n=args.k, temperature=0.8, max_new_tokens=args.max_new_tokens, seed=0)

    def count(texts):
        return sum(len(tok(t, add_special_tokens=False)["input_ids"]) + 1 for t in texts)  # +1: the EOS/stop

    # baseline: one prompt and one sample per generate call, as a naive loop would do
    base_prompts = prompts[: args.baseline_prompts]
    start, produced = time.perf_counter(), 0
    with torch.inference_mode():
        for p in base_prompts:
            if args.chat:  # the same rendering as the batched side; the template holds the BOS
                p = tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
            enc = tok(p, return_tensors="pt", add_special_tokens=not args.chat)
            for _ in range(args.k):
                out = model.generate(**enc, do_sample=True, temperature=0.8, max_new_tokens=args.max_new_tokens,
                                     pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
                produced += count(tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True))
    base_tps = produced / (time.perf_counter() - start)

    start = time.perf_counter()
    outs = sampler.generate(prompts, params)
    batched_tps = count([t for o in outs for t in o]) / (time.perf_counter() - start)
    # the same batches through transformers' own path: num_return_sequences (every sample prefills
    # its copy of the prompt), the concatenating KV cache, torch.multinomial
    start = time.perf_counter()
    outs = batched_generate(model, tok, prompts, params, args.batch_size, chat=args.chat, plain=True)
    plain_tps = count([t for o in outs for t in o]) / (time.perf_counter() - start)
    width = sum(len(t) for t in tok(render_prompts(tok, prompts, args.chat), add_special_tokens=False)["input_ids"])

    print(f"model: {path}  threads: {torch.get_num_threads()}")
    print(f"one-at-a-time generate : {base_tps:10.0f} tokens/s  ({len(base_prompts)} prompts x {args.k})")
    print(f"batched backend        : {batched_tps:10.0f} tokens/s  ({len(prompts)} prompts x {args.k}, "
          f"batch {args.batch_size})")
    print(f"speed-up               : {batched_tps / base_tps:10.1f}x")
    print(f"transformers batched   : {plain_tps:10.0f} tokens/s  (the same batches, generate's own path; ours is "
          f"{batched_tps / plain_tps:.2f}x; prompts average {width / len(prompts):.0f} tokens)")
    n_params = sum(p.numel() for p in model.parameters())
    peak = matmul_peak(args.peak_n)
    print(f"fp32 matmul peak       : {peak / 1e9:10.1f} GFLOP/s ({args.peak_n}^2 matmul, this run)")
    print(f"sampling MFU           : {2 * n_params * batched_tps / peak:10.1%} batched, "
          f"{2 * n_params * base_tps / peak:.1%} one-at-a-time (2N FLOPs/token, N={n_params / 1e6:.1f}M)")
    if args.train_steps:
        train_tps = train_throughput(model, args.train_steps, args.train_batch, args.train_length)
        print(f"training               : {train_tps:10.0f} tokens/s, MFU {6 * n_params * train_tps / peak:.1%} "
              f"(6N FLOPs/token; AdamW, batch {args.train_batch} x {args.train_length})")

    # vLLM on the same model and prompts, where vLLM and a GPU exist
    import importlib.util

    if importlib.util.find_spec("vllm") is None or not torch.cuda.is_available():
        print("vLLM backend           : skipped (needs vLLM and a CUDA GPU)")
        return
    from selfimprove.backends.vllm import VLLMSampler
    from selfimprove.config import VLLMBackendConfig

    hf_gpu = HFSampler(path, HFBackendConfig(batch_size=args.batch_size), ModelConfig(), "cuda")
    start = time.perf_counter()
    gpu_tps = count([t for o in hf_gpu.generate(prompts, params) for t in o]) / (time.perf_counter() - start)
    hf_gpu.close()
    engine = VLLMSampler(path, VLLMBackendConfig(gpu_memory_utilization=0.5), ModelConfig(), "cuda")
    start = time.perf_counter()
    vllm_tps = count([t for o in engine.generate(prompts, params) for t in o]) / (time.perf_counter() - start)
    print(f"transformers on GPU    : {gpu_tps:10.0f} tokens/s")
    print(f"vLLM on GPU            : {vllm_tps:10.0f} tokens/s  ({vllm_tps / gpu_tps:.1f}x transformers)")


def matmul_peak(n: int = 4096, repeats: int = 5) -> float:
    """The best FLOP/s of an n x n fp32 matmul: the CPU's practical peak, measured here and now."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def train_throughput(model, steps: int, batch: int, length: int) -> float:
    """Tokens/s of forward + backward + AdamW step on random token ids (one warm-up step)."""
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    ids = torch.randint(0, model.config.vocab_size, (batch, length))
    for i in range(steps + 1):
        if i == 1:
            start = time.perf_counter()
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    model.eval()
    return steps * batch * length / (time.perf_counter() - start)


if __name__ == "__main__":
    main()
