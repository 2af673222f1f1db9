"""Wall time of a 3-point sweep over a late-stage hyperparameter (train.learning_rate) with and
without cross-run stage reuse, measured in one run of this script.

    python scripts/bench_stage_cache.py [--profile debug] [--iterations 1] [extra overrides...]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time


def sweep(root: str, cache: bool, args) -> float:
    cmd = [sys.executable, "-m", "selfimprove.cli", "run", "-m", "recipe=star", f"profile={args.profile}",
           f"iterations={args.iterations}", "train.learning_rate=0.001,0.002,0.003", f"cache={str(cache).lower()}",
           "tracking.quiet=true", f"output_root={root}", *args.overrides]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="debug")
    ap.add_argument("--iterations", type=int, default=1)
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    without = sweep(tempfile.mkdtemp(), False, args)
    with_cache = sweep(tempfile.mkdtemp(), True, args)
    print(f"3-point sweep over train.learning_rate (profile={args.profile}, iterations={args.iterations})")
    print(f"without reuse : {without:7.1f} s")
    print(f"with reuse    : {with_cache:7.1f} s")
    print(f"speed-up      : {without / with_cache:7.2f}x")


if __name__ == "__main__":
    main()
