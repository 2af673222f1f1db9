"""One run read back (scripts/run_report.py): held-out greedy accuracy per iteration with a 95%
Wilson interval over the problems (what one seed can say), the paired sign test of each iteration
against the start on the same problems, wall time, and tokens/s for sampling and training."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from ..rundir import read_jsonl
from .stats import paired_comparison, wilson_interval

SAMPLING = ("generate", "rationalize", "evaluate")  # stages whose tokens/s is sampling speed


def greedy(path: Path) -> dict[str, float]:
    rows = [r for r in read_jsonl(path) if r.get("mode", "greedy") == "greedy"]
    if rows and not any("correct" in r for r in rows):
        raise ValueError(f"{path}: its greedy rows carry no `correct` field (a task without gold answers), so there "
                         f"is no accuracy to report; use `selfimprove compare --metric NAME` on its own metrics.")
    return {r["prompt_id"]: float(r["correct"]) for r in rows if "correct" in r}


def report(run: Path) -> list[str]:
    metrics = read_jsonl(run / "metrics.jsonl")
    lines = [f"## {run.name}", "", "| iteration | test accuracy (95% Wilson) | val accuracy | vs iteration 0 on the same "
             "test problems (sign test) |", "|---|---|---|---|"]
    start = None
    for folder in sorted(run.glob("iter_*/evaluate")):
        it = int(folder.parent.name.split("_")[1])
        test = greedy(folder / "eval.jsonl")
        val = greedy(folder / "val_eval.jsonl") if (folder / "val_eval.jsonl").exists() else {}
        acc, lo, hi = wilson_interval(int(sum(test.values())), len(test))
        row = f"| {it} | {100 * acc:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}] (n={len(test)}) | "
        row += f"{100 * sum(val.values()) / len(val):.1f}% (n={len(val)}) | " if val else "- | "
        if start is None:
            start, row = test, row + "- |"
        else:
            ids = sorted(set(start) & set(test))
            p = paired_comparison([test[i] for i in ids], [start[i] for i in ids])
            row += f"{100 * p.diff:+.1f} points, {p.a_better} better / {p.b_better} worse, p = {p.p_sign:.2g} |"
        lines.append(row)
    seconds, tokens, prompt = defaultdict(float), defaultdict(int), defaultdict(int)
    for m in metrics:
        kind = "training" if "tokens_trained" in m and m["stage"] not in SAMPLING else "sampling" \
            if m["stage"] in SAMPLING else "other"
        seconds[kind] += m.get("seconds", 0.0)
        tokens[kind] += m.get("tokens_trained", 0) if kind == "training" else m.get("tokens_completion", 0)
        prompt[kind] += m.get("tokens_prompt", 0) if kind == "sampling" else 0
    total = sum(seconds.values())
    per_s = max(seconds["sampling"], 1e-9)
    lines += ["", f"wall time of its stages: {total / 60:.1f} min; sampling {seconds['sampling'] / 60:.1f} min at "
              f"{tokens['sampling'] / per_s:.1f} completion tokens/s ({(tokens['sampling'] + prompt['sampling']) / per_s:.0f} "
              "with the prompt tokens it read); training "
              f"{seconds['training'] / 60:.1f} min at {tokens['training'] / max(seconds['training'], 1e-9):.1f} "
              "tokens/s (forward + backward)", ""]
    return lines
