"""Check the GSM8K answer checker against gold worked solutions.

    python scripts/check_gsm8k_answers.py PATH_TO_JSONL [PATH ...] [--show N]

For every row of a GSM8K-format JSONL file (question, answer = worked solution ending in
"#### N"), the gold answer is the normalised text after "####"; the row passes when the checker
extracts that answer from the solution and judges it correct (reward == 1.0), both from the raw
solution (with calculator annotations) and from the annotation-free form used as seed
completions, and also from the solution with its "####" line replaced by "The answer is N." and
by "\\boxed{N}" (the other answer formats the checker reads). Exits 1 if any row fails.

For information only (not a pass criterion), `no_marker` drops the "####" line altogether: the
checker then falls back to the last number of the solution, which is the answer in most but not
all GSM8K solutions (some end with a unit conversion or restate a quantity).
"""
from __future__ import annotations

import argparse
import sys
import time

from selfimprove.tasks.gsm8k import GSM8K, read_gsm8k_jsonl, strip_annotations


def variants(solution: str) -> dict[str, str]:
    body, _, final = solution.rpartition("####")
    clean = strip_annotations(body).rstrip()
    return {
        "raw": solution,
        "stripped": " " + strip_annotations(solution).strip(),
        "answer_is": f" {clean}\nThe answer is {final.strip()}.",
        "boxed": f" {clean}\nSo the answer is $\\boxed{{{final.strip()}}}$.",
    }


INFO_ONLY = {"no_marker"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="+")
    ap.add_argument("--show", type=int, default=5, help="failures to print per file")
    args = ap.parse_args(argv)
    task = GSM8K(None)  # the checker needs no config
    failed_any = False
    for path in args.paths:
        start = time.time()
        rows = read_gsm8k_jsonl(path)
        counts: dict[str, int] = {}
        failures = []
        for r in rows:
            problem = {"question": r["question"], "answer": r["gold"]}
            texts = variants(r["solution"])
            texts["no_marker"] = texts["answer_is"].rpartition("\n")[0]
            verdicts = {name: task.reward(text, problem) == 1.0 for name, text in texts.items()}
            for name, ok in verdicts.items():
                counts[name] = counts.get(name, 0) + ok
            wrong = [name for name, ok in verdicts.items() if not ok and name not in INFO_ONLY]
            if wrong:
                failures.append((r, wrong))
        n = len(rows)
        print(f"{path}: {n} rows, {time.time() - start:.1f}s")
        for name, c in counts.items():
            info = "  (information only)" if name in INFO_ONLY else ""
            print(f"  {name:10s} {c}/{n} judged correct ({100 * c / n:.2f}%){info}")
        print(f"  all checked formats {n - len(failures)}/{n} ({100 * (n - len(failures)) / n:.2f}%)")
        for r, names in failures[: args.show]:
            print(f"  FAIL line {r['line']} ({', '.join(names)}): gold {r['gold']!r}; solution {r['solution'][-120:]!r}")
        failed_any |= bool(failures)
    return 1 if failed_any else 0


if __name__ == "__main__":
    sys.exit(main())
