"""One run, read back: held-out greedy accuracy per iteration with a 95% Wilson interval over the
problems (what one seed can say), the paired sign test of each iteration against the start on the
same problems, wall time, and tokens/s for sampling and training.

    python scripts/run_report.py outputs/star [outputs/rest_em ...]

An interval over problems says how much another draw of test problems could move the figure; it
says nothing about another seed (use `selfimprove compare --group-by` over seeds for that).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from selfimprove.analysis.run_report import report  # noqa: E402

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path)
    args = ap.parse_args()
    for run in args.runs:
        if not (run / "metrics.jsonl").exists():
            ap.error(f"{run} is not a run folder (no metrics.jsonl); give e.g. outputs/star")
        try:
            print("\n".join(report(run)))
        except ValueError as exc:
            ap.error(str(exc))


if __name__ == "__main__":
    main()
