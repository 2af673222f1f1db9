"""Sharded sampling against one process: the generate stage on the default tiny model (untrained
weights, so every completion runs to max_new_tokens), N shards as local processes.

    python scripts/bench_shards.py --problems 256 --k 4 --shards 2

Prints completion tokens/s of each setting, the ratio to one process, and whether the samples are
identical. Wall time covers the whole stage, shard start-up and model loading included. Shards
get `threads // shards` torch threads each; one process gets `threads`.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from omegaconf import OmegaConf


def run(tmp: Path, model: Path, shards: int, threads: int, args) -> tuple[float, list[dict], dict]:
    import torch

    from selfimprove.config import GenerateConfig, HFBackendConfig, ModelConfig, ShardingConfig, TinyModelConfig
    from selfimprove.rundir import read_jsonl, write_jsonl
    from selfimprove.stages import StageContext, get_stage
    from selfimprove.tasks.arithmetic import Arithmetic
    from selfimprove.tracking import Console

    torch.set_num_threads(threads)
    out = tmp / f"shards{shards}-threads{threads}"
    out.mkdir(parents=True)
    write_jsonl(tmp / "problems.jsonl", [{"id": f"p{i}", "question": f"{1000 + 37 * i}+{2000 + 11 * i}",
                                          "answer": str(3000 + 48 * i)} for i in range(args.problems)])
    ctx = StageContext(
        name="generate", iteration=1, seed=0,
        cfg=OmegaConf.structured(GenerateConfig(k=args.k, temperature=1.0, max_new_tokens=args.max_new_tokens,
                                                shards=shards)),
        task=Arithmetic(SimpleNamespace()), model_cfg=OmegaConf.structured(ModelConfig(tiny=TinyModelConfig())),
        backend_cfg=OmegaConf.structured(HFBackendConfig(batch_size=args.batch_size, chunk_prompts=args.chunk)),
        device="cpu", inputs={"model": str(model), "problems": str(tmp / "problems.jsonl")}, out=out,
        ui=Console(quiet=True),
        sharding=OmegaConf.structured(ShardingConfig(launcher="local", threads=max(1, threads // shards))))
    start = time.time()
    result = get_stage("generate").fn(ctx)
    return time.time() - start, read_jsonl(out / "samples.jsonl"), result.metrics


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--problems", type=int, default=256)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--chunk", type=int, default=32, help="backend.chunk_prompts")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2, help="torch threads in all (the machine's cores)")
    args = ap.parse_args()

    from selfimprove.config import TinyModelConfig
    from selfimprove.models import load_tokenizer
    from selfimprove.models.tiny import save_tiny

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        model = save_tiny(TinyModelConfig(), tmp / "model", seed=0)
        tok = load_tokenizer(str(model), False, padding_side="left")
        report = {}
        base = None
        for shards, threads in ((1, args.threads), (args.shards, args.threads), (1, 1)):
            seconds, rows, metrics = run(tmp, model, shards, threads, args)
            tokens = sum(len(tok(r["text"], add_special_tokens=False)["input_ids"]) for r in rows)
            key = f"shards={shards} threads={threads}"
            report[key] = {"seconds": round(seconds, 1), "completion_tokens": tokens,
                           "tokens_per_s": round(tokens / seconds, 1), "samples": len(rows)}
            if base is None:
                base = rows
            report[key]["ratio_to_one_process"] = round(report[f"shards=1 threads={args.threads}"]["seconds"] / seconds, 2)
            report[key]["samples_identical_to_one_process"] = rows == base
            print(key, json.dumps(report[key]), flush=True)
        print(json.dumps({"settings": vars(args), "results": report}, indent=2))


if __name__ == "__main__":
    main()
