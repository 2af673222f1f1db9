"""Sharded sampling against one process: the generate stage on the default tiny model (untrained
weights, so every completion runs to max_new_tokens), N shards as local processes.

    python scripts/bench_shards.py --problems 512 --k 4 --settings 1:1,2:2,1:2 --repeats 3

Prints completion tokens/s of each setting, the ratio to the first setting, and whether the
samples are identical. Wall time covers the whole stage, shard start-up (each shard imports
torch and loads the model) included. `--settings 1:1,2:2,1:2` lists SHARDS:THREADS pairs (THREADS
in all: a shard gets THREADS // SHARDS); `--repeats` runs the list that many times (in turn, so
a busy machine's load falls on every setting alike). A warm-up call comes first, so the first
setting does not pay this process's imports.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from omegaconf import OmegaConf


def run(tmp: Path, model: Path, shards: int, threads: int, args) -> tuple[float, list[dict], dict]:
    import torch

    from selfimprove.config import HFBackendConfig, ModelConfig, ShardingConfig, TinyModelConfig
    from selfimprove.stages.generate import GenerateConfig
    from selfimprove.rundir import read_jsonl, write_jsonl
    from selfimprove.stages import StageContext, get_stage
    from selfimprove.tasks.arithmetic import Arithmetic
    from selfimprove.tracking import Console

    torch.set_num_threads(threads)
    out = tmp / f"shards{shards}-threads{threads}"
    out.mkdir(parents=True)
    tmp.mkdir(parents=True, exist_ok=True)
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
    ap.add_argument("--settings", default="1:1,2:2,1:2", help="SHARDS:THREADS,... (the first is the baseline)")
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    settings = [tuple(map(int, s.split(":"))) for s in args.settings.split(",")]

    from selfimprove.config import TinyModelConfig
    from selfimprove.models import load_tokenizer
    from selfimprove.models.tiny import save_tiny

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        model = save_tiny(TinyModelConfig(), tmp / "model", seed=0)
        tok = load_tokenizer(str(model), False, padding_side="left")
        warm = argparse.Namespace(**{**vars(args), "problems": 8})
        run(tmp / "warmup", model, 1, 1, warm)
        times: dict[str, list[float]] = {}
        base, tokens = None, 0
        for r in range(args.repeats):
            for shards, threads in settings:
                seconds, rows, metrics = run(tmp / f"r{r}", model, shards, threads, args)
                tokens = sum(len(tok(x["text"], add_special_tokens=False)["input_ids"]) for x in rows)
                base = rows if base is None else base
                key = f"shards={shards} threads={threads}"
                times.setdefault(key, []).append(seconds)
                print(key, f"repeat {r}: {seconds:.1f} s, {tokens / seconds:.1f} completion tokens/s, "
                           f"samples identical to the first setting: {rows == base}", flush=True)
                if shards > 1:  # the slowest shard: imports, engine start-up, sampling
                    print(f"  shard seconds: import {metrics.get('shard_import_s')}, model load "
                          f"{metrics.get('shard_load_s')}, sampling {metrics.get('shard_sample_s')}", flush=True)
        first = f"shards={settings[0][0]} threads={settings[0][1]}"
        report = {k: {"median_s": round(statistics.median(v), 1), "runs_s": [round(x, 1) for x in v],
                      "tokens_per_s": round(tokens / statistics.median(v), 1),
                      "speedup_vs_first": round(statistics.median(times[first]) / statistics.median(v), 2)}
                  for k, v in times.items()}
        print(json.dumps({"settings": vars(args), "completion_tokens": tokens, "results": report}, indent=2))


if __name__ == "__main__":
    main()
