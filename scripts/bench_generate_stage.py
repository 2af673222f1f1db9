"""The generate stage as a run runs it, timed with the shared-prefix cache off and on, in one run.

    python scripts/bench_generate_stage.py --model ~/.cache/selfimprove/models/SmolLM2-135M-Instruct
    python scripts/bench_generate_stage.py --model DIR --problems 400 -- generate.k=4 generate.temperature=0.7

The config is the SmolLM2 STaR command of docs/real-models.md (a measured self-improvement of
SmolLM2-135M-Instruct: sums of two 2-digit numbers in GSM8K's format, a 4-shot prompt in the chat
template, greedy, 48 new tokens, backend.batch_size=16, threads=1), composed as `selfimprove run`
composes it; anything after `--` is added as overrides. The problems are the first --problems of
the stage's own draw (generate.num_problems from the training split, seeded), the prompts the
task's, the sampler the run's (HFSampler with the run's backend and model sections). Both sides
sample the same prompts in this process, alternating --repeats times, so the printed ratio holds on
a loaded machine; the samples of the two sides are compared (they must be identical).

Completion tokens are counted as the run counts them (selfimprove/compute.py: up to and including
the end-of-sequence token); prompt tokens are the ones prefilled.
"""
from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_overrides(model: str, data: Path) -> list[str]:
    return ["recipe=star", "model=smollm2-135m-instruct", f"model.name_or_path={model}", "task=gsm8k",
            f"task.train_path={data}/train.jsonl", f"task.test_path={data}/test.jsonl", "task.val_size=100",
            "task.train_size=400", "task.test_size=300", "iterations=2", "generate.num_problems=400",
            "generate.max_new_tokens=48", "backend.batch_size=16", "threads=1"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="a model folder (e.g. the fetched SmolLM2)")
    ap.add_argument("--problems", type=int, default=64, help="problems of the stage's draw to sample")
    ap.add_argument("--repeats", type=int, default=1, help="off/on pairs, alternating")
    ap.add_argument("--data", type=Path, help="a GSM8K-format folder (default: the docs' sums-2x2, written here)")
    ap.add_argument("overrides", nargs="*", help="more config overrides (after --)")
    args = ap.parse_args()

    data = args.data
    if data is None:
        data = Path(tempfile.mkdtemp()) / "sums-2x2"
        subprocess.run([sys.executable, str(ROOT / "scripts" / "make_sums_gsm8k.py"), "--digits", "2", "--terms", "2",
                        "--out", str(data)], check=True, capture_output=True)
    import torch

    from selfimprove import compute
    from selfimprove.backends import SamplingParams
    from selfimprove.backends.hf import HFSampler
    from selfimprove.config.compose import compose
    from selfimprove.tasks import build_task

    cfg = compose(readme_overrides(args.model, data) + args.overrides)[0]
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    task = build_task(cfg.task)
    train = task.splits()["train"]
    g = cfg.generate
    drawn = random.Random(cfg.seed).sample(train, g.num_problems) if g.num_problems and g.num_problems < len(train) \
        else train
    prompts = [task.prompt(p) for p in drawn[: args.problems]]
    params = SamplingParams(n=g.k, temperature=g.temperature, top_p=g.top_p, top_k=g.top_k,
                            max_new_tokens=g.max_new_tokens, seed=cfg.seed)
    sampler = HFSampler(args.model, cfg.backend, cfg.model, "cpu")

    totals = {False: [0.0, 0, 0], True: [0.0, 0, 0]}  # seconds, completion tokens, prompt tokens
    samples = {}
    for _ in range(args.repeats):
        for share in (False, True):
            sampler.share_prefix = share
            with compute.metering() as meter:
                start = time.perf_counter()
                samples[share] = sampler.generate(prompts, params)
                totals[share][0] += time.perf_counter() - start
            totals[share][1] += meter.counts["tokens_completion"]
            totals[share][2] += meter.counts["tokens_prompt"]

    rows = len(prompts) * params.n
    print(f"model: {args.model}  threads: {torch.get_num_threads()}  prompts: {len(prompts)} x {params.n} "
          f"(batch {cfg.backend.batch_size}, max_new_tokens {params.max_new_tokens}, T={params.temperature}, "
          f"{args.repeats} repeat(s))")
    tps = {}
    for share, label in ((False, "prefix cache off"), (True, "prefix cache on")):
        seconds, completion, prompt = totals[share]
        tps[share] = completion / seconds
        print(f"{label:<17}: {tps[share]:10.1f} completion tokens/s  ({completion // args.repeats} completion, "
              f"{prompt // args.repeats} prompt tokens prefilled per repeat, {seconds / args.repeats:.1f} s, "
              f"{rows * args.repeats / seconds:.2f} samples/s)")
    print(f"speed-up         : {tps[True] / tps[False]:10.2f}x")
    print(f"identical samples: {'yes' if samples[True] == samples[False] else 'NO'}")


if __name__ == "__main__":
    main()
