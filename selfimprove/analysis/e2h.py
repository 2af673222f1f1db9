"""Easy-to-hard runs read back (scripts/e2h_summary.py): per round, the trained length, the
longest length at target, the kept fraction and the self-labels' accuracy; per run, the best exact
match any round reached at each length; two sets of runs paired by seed with a t-interval. Gold
answers enter these numbers only as monitors (the runs never trained on them)."""
from __future__ import annotations

import json
from pathlib import Path

from .stats import t_interval


def rounds(run: Path) -> dict[int, dict[str, dict]]:
    """iteration -> stage -> its metrics row."""
    out: dict[int, dict[str, dict]] = {}
    for line in (run / "metrics.jsonl").read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            out.setdefault(row["iteration"], {})[row["stage"]] = row
    return out


def lengths(evaluation: dict) -> dict[int, float]:
    return {int(k[len("accuracy_d"):]): v for k, v in evaluation.items() if k.startswith("accuracy_d")}


def summary(run: Path, show: bool = True) -> tuple[dict[int, float], list, float, int]:
    """(best exact match per length over rounds, kept labels' accuracy in rounds 1-4, stage
    seconds, start length); with `show`, print the per-round lines."""
    by = rounds(run)
    if show:
        print(f"## {run}")
    seconds, best = 0.0, {}
    for it in sorted(by):
        stages = by[it]
        seconds += sum(s.get("seconds", 0) for s in stages.values())
        ev, sl = stages.get("evaluate_lengths", {}), stages.get("self_label", {})
        acc = lengths(ev)
        for n, a in acc.items():
            best[n] = max(best.get(n, 0.0), a)
        if show:
            cells = " ".join(f"{n}:{100 * a:.0f}" for n, a in sorted(acc.items()))
            print(f"round {it}: L={ev.get('trained_length')} longest99={ev.get('longest_at_target')} "
                  f"kept={sl.get('kept_fraction')} label_acc={sl.get('label_accuracy')} "
                  f"label_acc_all={sl.get('label_accuracy_all')} seconds={seconds:.0f} | {cells}")
    start = by[0].get("evaluate_lengths", {}).get("trained_length") or 8
    labels = [by.get(r, {}).get("self_label", {}).get("label_accuracy") for r in range(1, 5)]
    return best, labels, seconds, start


def table(runs: list[Path]) -> None:
    table = [(run.name, *summary(run)) for run in runs]
    if not table:
        return
    start = table[0][4]
    columns = range(start + 2, start + 9)  # the lengths self-labels must reach: start+2 .. start+8
    print()
    print("| run | " + " | ".join(f"best {n}" for n in columns)
          + " | kept labels right, rounds 1-4 | stage time |")
    print("|---" * (len(columns) + 3) + "|")
    for name, best, labels, seconds, _ in table:
        cells = " | ".join("-" if best.get(n) is None else f"{100 * best[n]:.0f}%" for n in columns)
        lab = " / ".join("-" if x is None else f"{100 * x:.1f}" for x in labels)
        print(f"| {name} | {cells} | {lab}% | {seconds / 60:.1f} min |")


def paired(a_runs: list[Path], b_runs: list[Path]) -> None:
    """B minus A, run i of each list paired (same seed, so the same round-0 model): per length,
    the best exact match over rounds; per round 1-4, the kept labels' accuracy. Mean over pairs
    and a two-sided 95% t-interval of the per-pair differences (stats.t_interval)."""
    if len(a_runs) != len(b_runs) or len(a_runs) < 2:
        raise ValueError(f"--paired needs the same number (>= 2) of runs on each side; got {len(a_runs)} and {len(b_runs)}.")
    a, b = [summary(r, show=False) for r in a_runs], [summary(r, show=False) for r in b_runs]
    start = a[0][3]
    print(f"B minus A over {len(a)} pairs (mean ± 95% t-interval, points); A = {', '.join(r.name for r in a_runs)}; "
          f"B = {', '.join(r.name for r in b_runs)}")
    print("| measure | A | B | B - A |")
    print("|---|---|---|---|")
    rows = [(f"best {n} digits", [x[0].get(n, 0.0) for x in a], [y[0].get(n, 0.0) for y in b])
            for n in range(start + 1, start + 7)]
    rows += [(f"kept labels right, round {r}", [x[1][r - 1] for x in a], [y[1][r - 1] for y in b]) for r in range(1, 5)
             if all(x[1][r - 1] is not None for x in a + b)]
    for name, xs, ys in rows:
        mean, half = t_interval([100 * (y - x) for x, y in zip(xs, ys)])
        print(f"| {name} | {100 * sum(xs) / len(xs):.1f} | {100 * sum(ys) / len(ys):.1f} | "
              f"{mean:+.1f} ± {half:.1f} |")
