"""Write a multi-term addition task in GSM8K's JSONL format (`task=gsm8k` reads it as is): each
question is "What is 47 + 38 + 12?", each answer a worked solution that adds one term a line and
ends in "#### N". Two knobs set the difficulty: digits per term and number of terms. The real-model
result in docs/real-models.md (SmolLM2-135M-Instruct) chose them on the validation split.

    python scripts/make_sums_gsm8k.py --digits 2 --terms 3 --out data/sums-2x3
    selfimprove run recipe=star model=smollm2-135m-instruct model.name_or_path=DIR task=gsm8k \\
        task.train_path=data/sums-2x3/train.jsonl task.test_path=data/sums-2x3/test.jsonl
"""
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path


def problem(rng: random.Random, digits: int, terms: int) -> dict:
    lo = 10 ** (digits - 1) if digits > 1 else 0
    xs = [rng.randint(lo, 10 ** digits - 1) for _ in range(terms)]
    lines, total = [], xs[0]
    for x in xs[1:]:
        lines.append(f"{total} + {x} = {total + x}")
        total += x
    return {"question": f"What is {' + '.join(map(str, xs))}?", "answer": "\n".join(lines) + f"\n#### {total}"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--digits", type=int, default=2)
    ap.add_argument("--terms", type=int, default=3)
    ap.add_argument("--train", type=int, default=2000, help="training problems (val and few-shot exemplars come from these)")
    ap.add_argument("--test", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    if a.digits < 1 or a.terms < 2:
        ap.error("--digits must be >= 1 and --terms >= 2")
    rng = random.Random(a.seed)
    seen: set[str] = set()
    splits: dict[str, list[dict]] = {"train": [], "test": []}
    for split, n in (("test", a.test), ("train", a.train)):  # no question in both files
        tries = 0
        while len(splits[split]) < n:
            p = problem(rng, a.digits, a.terms)
            tries += 1
            if tries > 100 * n:
                ap.error(f"only {len(seen)} distinct problems exist at --digits {a.digits} --terms {a.terms}; ask for fewer")
            if p["question"] not in seen:
                seen.add(p["question"])
                splits[split].append(p)
    a.out.mkdir(parents=True, exist_ok=True)
    for split, rows in splits.items():
        (a.out / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(a.out)


if __name__ == "__main__":
    main()
