"""`selfimprove compare` and `selfimprove ls`: read run directories (metrics.jsonl, run.json,
config.yaml) and show them side by side. Nothing here imports torch, so both are instant."""
from __future__ import annotations

import csv
import fcntl
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

HEADLINE = ("accuracy", "pass@1", "maj@4", "pass@4")


class NotARunError(ValueError):
    pass


@dataclass
class Run:
    path: Path
    info: dict
    rows: list[dict]
    overrides: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def recipe(self) -> str:
        return self.info.get("recipe") or "?"

    def evaluations(self) -> list[dict]:
        # evaluate_lengths: easy-to-hard's per-length evaluation (its `accuracy` is the window's mean)
        return [r for r in self.rows if r.get("stage") in ("evaluate", "evaluate_lengths")]

    def seconds_through(self, iteration: int) -> float:
        return sum(r.get("seconds", 0.0) for r in self.rows if r["iteration"] <= iteration)


def is_run(path: Path) -> bool:
    return (path / "run.json").is_file()


def load_run(path: Path) -> Run:
    if not is_run(path):
        raise NotARunError(f"{path} is not a selfimprove run directory (no run.json). "
                           f"Pass a folder made by `selfimprove run`, e.g. outputs/star.")
    info = json.loads((path / "run.json").read_text())
    rows = []
    if (path / "metrics.jsonl").exists():
        rows = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return Run(path, info, rows, list(info.get("overrides", [])))


def final_metric(run_dir: Path, metric: str) -> Optional[float]:
    """The metric of a run's last evaluation (None if it has none)."""
    evals = load_run(run_dir).evaluations()
    return evals[-1].get(metric) if evals else None


def find_runs(paths: list[str]) -> list[Run]:
    """Run directories, expanding a folder of runs (an output root or a multirun sweep)."""
    runs = []
    for p in map(Path, paths):
        if is_run(p):
            runs.append(load_run(p))
            continue
        children = sorted(c for c in p.rglob("run.json") if c.parent != p) if p.is_dir() else []
        if not children:
            raise NotARunError(f"{p} is not a selfimprove run directory and holds none "
                               f"(no run.json found). Pass run folders such as outputs/star, or a sweep folder.")
        runs.extend(load_run(c.parent) for c in children)
    return runs


def status(run: Run) -> str:
    """finished | running | failed: <first line> | interrupted at iteration i stage s."""
    s = run.info.get("status", "unknown")
    if s == "running" and not _locked(run.path):
        s = "interrupted"  # the process died without saying so (kill -9, power loss)
    if s == "failed":
        return f"failed: {run.info.get('error', '')}"
    if s in ("interrupted", "running") and "stage" in run.info:
        return f"{s} at iteration {run.info['iteration']} stage {run.info['stage']}"
    return s


def _locked(path: Path) -> bool:
    lock = path / ".lock"
    if not lock.exists():
        return False
    fd = os.open(lock, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def comparison_rows(runs: list[Run], metrics: Optional[list[str]] = None) -> tuple[list[str], list[dict]]:
    """One row per run and evaluated iteration. Returns (metric columns, rows)."""
    common = set.intersection(*(set(r.overrides) for r in runs)) if runs else set()
    present = [m for m in (metrics or HEADLINE) if any(m in e for r in runs for e in r.evaluations())]
    table = []
    for run in runs:
        differing = " ".join(o for o in run.overrides if o not in common and not o.startswith(("output_root=",)))
        evals = run.evaluations()
        if not evals:
            table.append({"run": run.name, "recipe": run.recipe, "overrides": differing, "iteration": None,
                          **{m: None for m in present}, "wall_s": None, "status": status(run)})
        for e in evals:
            table.append({"run": run.name, "recipe": run.recipe, "overrides": differing, "iteration": e["iteration"],
                          **{m: e.get(m) for m in present}, "wall_s": round(run.seconds_through(e["iteration"]), 1),
                          "status": status(run)})
    return present, table


def render(rows: list[dict], fmt: str) -> str:
    cols = list(rows[0]) if rows else []
    if fmt == "json":
        return json.dumps(rows, indent=2)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=cols)
        writer.writeheader()
        writer.writerows(rows)
        return buf.getvalue()
    if fmt == "markdown":
        cell = lambda v: "" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
        lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        lines += ["| " + " | ".join(cell(r[c]) for c in cols) + " |" for r in rows]
        return "\n".join(lines)
    raise ValueError(f"unknown format '{fmt}': use table, csv, json or markdown")


def plot(runs: list[Run], path: str, metric: str = "accuracy") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for run in runs:
        pts = [(e["iteration"], e[metric]) for e in run.evaluations() if metric in e]
        if pts:
            xs, ys = zip(*pts)
            ax.plot(xs, ys, marker="o", label=f"{run.name} ({run.recipe})")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("iteration")
    ax.set_ylabel(f"held-out {metric}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def length_grid(run: Run) -> tuple[list[int], list[int], list[list[Optional[float]]]]:
    """Accuracy by difficulty (length) x iteration from a run's per-length evaluations
    (`accuracy_d<N>` of evaluate_lengths rows, else of evaluate rows): (iterations, lengths, grid)."""
    rows = [r for r in run.rows if r.get("stage") == "evaluate_lengths"] or run.evaluations()
    by_it: dict[int, dict[int, float]] = {}
    for r in rows:
        cells = {int(k[len("accuracy_d"):]): v for k, v in r.items() if k.startswith("accuracy_d") and k[10:].isdigit()}
        by_it.setdefault(r["iteration"], {}).update(cells)
    its = sorted(by_it)
    lengths = sorted({n for cells in by_it.values() for n in cells})
    return its, lengths, [[by_it[i].get(n) for n in lengths] for i in its]


def heatmap(runs: list[Run], path: str) -> None:
    """One panel per run: accuracy (colour, with the value written in each cell) by length x round."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    grids = [(run, *length_grid(run)) for run in runs]
    grids = [g for g in grids if g[2]]
    if not grids:
        raise NotARunError("none of these runs has per-length accuracies (accuracy_d<N>) to draw; "
                           "the heatmap is for recipes that evaluate per length, e.g. recipe=easy_to_hard.")
    fig, axes = plt.subplots(1, len(grids), figsize=(max(4.0, 0.5 * max(len(g[2]) for g in grids) + 2) * len(grids),
                                                     0.45 * max(len(g[1]) for g in grids) + 1.8), squeeze=False)
    for ax, (run, its, lengths, grid) in zip(axes[0], grids):
        data = np.array([[np.nan if v is None else v for v in row] for row in grid], dtype=float)
        im = ax.imshow(data, vmin=0, vmax=1, cmap="viridis", aspect="auto", origin="lower")
        for i in range(len(its)):
            for j in range(len(lengths)):
                if not np.isnan(data[i, j]):
                    ax.text(j, i, f"{100 * data[i, j]:.0f}", ha="center", va="center", fontsize=7,
                            color="white" if data[i, j] < 0.6 else "black")
        ax.set_xticks(range(len(lengths)), [str(n) for n in lengths], fontsize=8)
        ax.set_yticks(range(len(its)), [str(i) for i in its], fontsize=8)
        ax.set_xlabel("length (digits)")
        ax.set_ylabel("round")
        ax.set_title(f"{run.name} ({run.recipe})", fontsize=9)
    fig.colorbar(im, ax=axes[0].tolist(), label="exact match")
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
