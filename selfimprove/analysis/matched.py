"""Runs matched on training compute (scripts/compare_grpo.py): each run's training FLOPs per
iteration, exactly as its stages recorded them (`flops` in metrics.jsonl: 2N per sampled or
reference token, 6N per trained token, see selfimprove/compute.py), and a report of final accuracy
against those FLOPs with the paired tests of `compare --paired`. The seed model and the evaluations
are the same for every recipe's comparison point and are not counted."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from ..rundir import read_jsonl
from .groups import CompareError
from .paired import paired_rows
from .runs import EVALUATIONS, load_run
from .stats import t_interval


def rows(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    return read_jsonl(path) if path.exists() else []


def params(run_dir: Path) -> Optional[int]:
    """N, the parameter count the run's stages recorded (None if none did)."""
    return load_run(Path(run_dir)).params


def iteration_flops(run_dir: Path, stages: Optional[tuple[str, ...]] = None) -> dict[int, float]:
    """Recorded FLOPs of each iteration >= 1 outside its evaluations (`Run.stage_flops`); `stages`:
    only theirs."""
    run = load_run(Path(run_dir))
    out: dict[int, float] = {}
    for r in run.rows:
        it, stage = r["iteration"], r["stage"]
        if it == 0 or stage in EVALUATIONS or (stages is not None and stage not in stages):
            continue
        out[it] = out.get(it, 0.0) + (run.stage_flops(r) or 0.0)
    return out


def curve(run_dir: Path) -> list[tuple[float, float]]:
    """(cumulative training FLOPs, held-out greedy accuracy) per iteration, from the seed model on."""
    acc = {r["iteration"]: r["accuracy"] for r in rows(run_dir) if r["stage"] == "evaluate" and "accuracy" in r}
    fl, total, out = iteration_flops(run_dir), 0.0, []
    for it in sorted(acc):
        total += fl.get(it, 0.0)
        out.append((total, acc[it]))
    return out


def _seed_table(runs: dict[str, list[Path]], table: dict[str, list[tuple[float, float]]]) -> list[str]:
    """One row per run: final accuracy and training FLOPs (the FLOPs match is per seed, not only on average)."""
    out = ["| recipe | run | final accuracy | training FLOPs |", "|---|---|---|---|"]
    for label, vals in table.items():
        done = [d for d in runs[label] if (d / "metrics.jsonl").exists()]
        out += [f"| {label} | {d.name} | {100 * a:.1f}% | {f:.3g} |" for d, (a, f) in zip(done, vals)]
    return out


def _paired_lines(runs: dict[str, list[Path]], first: Optional[str]) -> list[str]:
    """The first label against each other one, at each run's last iteration: paired by seed model
    and problem by problem (paired bootstrap, exact sign test, Holm)."""
    units = {label: [load_run(d) for d in dirs if (d / "metrics.jsonl").exists()] for label, dirs in runs.items()}
    units = {label: rs for label, rs in units.items() if rs}
    if first not in units or len(units) < 2:
        return []
    try:
        pairs = paired_rows(units)
    except CompareError as exc:
        return [f"No paired table: {exc}"]
    out = [f"| {first} minus | problems | paired by seed (mean ± 95% t) | problem by problem (diff, 95% bootstrap) "
           "| problems better / worse | sign test p (Holm over all pairs) |", "|---|---|---|---|---|---|"]
    for r in pairs:
        if first not in (r["a"], r["b"]):
            continue
        sign = 1 if r["a"] == first else -1  # rows are A - B in the labels' order: turn to first - other
        other = r["b"] if sign == 1 else r["a"]
        better, worse = (r["a_better"], r["b_better"])[::sign]
        low, high = sorted((sign * r["diff_low"], sign * r["diff_high"]))
        by_seed = f"({r['seed_note'].removeprefix('n/a ').strip('()')})" if r["seed_diff"] is None else \
            f"{100 * sign * r['seed_diff']:+.1f} ± {100 * r['seed_diff_ci95']:.1f}"
        out.append(f"| {other} | {r['problems']} | {by_seed} | {100 * sign * r['diff']:+.1f} [{100 * low:+.1f}, "
                   f"{100 * high:+.1f}] | {better} / {worse} | {r['p_sign']:.2g} ({r['p_holm']:.2g}) |")
    return out


def report_runs(runs: dict[str, list[Path]], out_dir: Path) -> str:
    """Table, comparison.json and plot for finished runs: label -> its run folders (one per seed);
    the first label is the FLOPs reference."""
    table, curves = {}, {}
    for label, dirs in runs.items():
        for d in dirs:
            if not (d / "metrics.jsonl").exists():
                continue
            c = curve(d)
            curves.setdefault(label, []).append(c)
            table.setdefault(label, []).append((c[-1][1], c[-1][0]))
    first = next(iter(table), None)
    lines = ["| recipe | seeds | final accuracy (mean ± 95% CI) | training FLOPs (mean) | vs "
             f"{first} |", "|---|---|---|---|---|"]
    ref = sum(f for _, f in table[first]) / len(table[first]) if first else 1.0
    for recipe, vals in table.items():
        mean, half = t_interval([a for a, _ in vals])
        flops = sum(f for _, f in vals) / len(vals)
        ratio = flops / ref if ref else float("nan")
        mark = "" if abs(ratio - 1) <= 0.1 else " (outside ±10%)"
        ci = f"± {100 * half:.1f}" if half is not None else "(one seed: no interval)"
        lines.append(f"| {recipe} | {len(vals)} | {100 * mean:.1f}% {ci} | {flops:.3g} | {ratio:.2f}x{mark} |")
    text = "\n".join(lines + [""] + _seed_table(runs, table) + [""] + _paired_lines(runs, first))
    (out_dir / "comparison.md").write_text(text + "\n")
    folders = {k: [str(d) for d in v] for k, v in runs.items()}
    (out_dir / "comparison.json").write_text(json.dumps({"curves": curves, "runs": folders}, indent=1))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (recipe, cs) in enumerate(curves.items()):
        for j, c in enumerate(cs):
            ax.plot([x for x, _ in c], [100 * y for _, y in c], marker="o", color=f"C{i}", alpha=0.8,
                    label=recipe if j == 0 else None)
    seeds = sorted({len(cs) for cs in curves.values()})
    ax.set_title(f"{'one seed' if seeds == [1] else 'seeds per recipe: ' + '/'.join(map(str, seeds))}; "
                 "each line is one run", fontsize=9)
    ax.set_xlabel("cumulative training FLOPs (from the seed model, as recorded)")
    ax.set_ylabel("held-out greedy accuracy (%)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "comparison.png", dpi=120)
    plt.close(fig)
    return text
