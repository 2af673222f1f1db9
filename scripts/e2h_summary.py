"""Per-round summary of easy_to_hard runs, and one markdown table comparing them.

    python scripts/e2h_summary.py outputs/easy_to_hard [RUN...]

Per run and round: trained length L, the longest length at >= 99%, kept fraction, label accuracy
of the kept labels (and of all labels, before the filters), stage seconds so far, exact match per
evaluated length. Then a table, one row per run: the best exact match any round reached at each
length from start+2 to start+6, the kept labels' accuracy in rounds 1-4, and the run's stage
seconds. Gold answers enter these numbers only as monitors (the runs never trained on them).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


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


def main(runs: list[Path]) -> None:
    table = []
    for run in runs:
        by = rounds(run)
        print(f"## {run}")
        seconds, best = 0.0, {}
        for it in sorted(by):
            stages = by[it]
            seconds += sum(s.get("seconds", 0) for s in stages.values())
            ev, sl = stages.get("evaluate_lengths", {}), stages.get("self_label", {})
            acc = lengths(ev)
            for n, a in acc.items():
                best[n] = max(best.get(n, 0.0), a)
            cells = " ".join(f"{n}:{100 * a:.0f}" for n, a in sorted(acc.items()))
            print(f"round {it}: L={ev.get('trained_length')} longest99={ev.get('longest_at_target')} "
                  f"kept={sl.get('kept_fraction')} label_acc={sl.get('label_accuracy')} "
                  f"label_acc_all={sl.get('label_accuracy_all')} seconds={seconds:.0f} | {cells}")
        start = by[0].get("evaluate_lengths", {}).get("trained_length") or 8
        labels = [by.get(r, {}).get("self_label", {}).get("label_accuracy") for r in range(1, 5)]
        table.append((run.name, [best.get(n) for n in range(start + 2, start + 7)], labels, seconds, start))
    if not table:
        return
    start = table[0][4]
    print()
    print("| run | " + " | ".join(f"best {n}" for n in range(start + 2, start + 7))
          + " | kept labels right, rounds 1-4 | stage time |")
    print("|---" * 8 + "|")
    for name, best, labels, seconds, _ in table:
        cells = " | ".join("-" if b is None else f"{100 * b:.0f}%" for b in best)
        lab = " / ".join("-" if x is None else f"{100 * x:.1f}" for x in labels)
        print(f"| {name} | {cells} | {lab}% | {seconds / 60:.1f} min |")


if __name__ == "__main__":
    main([Path(a) for a in sys.argv[1:]])
