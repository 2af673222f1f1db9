"""`selfimprove compare` and `selfimprove ls`: read run directories (metrics.jsonl, run.json,
config.yaml) and show them side by side. Nothing here imports torch, so both are instant."""
from __future__ import annotations

import csv
import fcntl
import functools
import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import yaml

HEADLINE = ("accuracy", "val_accuracy", "pass@1", "maj@4", "pass@4")


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
        # evaluate_lengths: easy-to-hard's per-length evaluation (its `accuracy` is the window's mean);
        # evaluate_turns: SCoRe's two-turn evaluation (acc_t1, acc_t2, val_acc_t2, ...)
        return [r for r in self.rows if r.get("stage") in ("evaluate", "evaluate_lengths", "evaluate_turns")]

    def seconds_through(self, iteration: int) -> float:
        return sum(r.get("seconds", 0.0) for r in self.rows if r["iteration"] <= iteration)

    def flops_through(self, iteration: int) -> Optional[float]:
        """Cumulative FLOPs through `iteration`: the evaluate row's `cum_flops` if the pipeline
        wrote one, else the sum of the per-stage `flops` (None if no stage reports FLOPs)."""
        done = [r for r in self.rows if r["iteration"] <= iteration]
        cum = [r["cum_flops"] for r in done if r.get("stage") == "evaluate" and "cum_flops" in r]
        if cum:
            return cum[-1]
        if not any("flops" in r for r in self.rows):
            return None
        return float(sum(r["flops"] for r in done if isinstance(r.get("flops"), (int, float))))

    def x_at(self, iteration: int, axis: str) -> Optional[float]:
        """The plot's x value for an evaluated iteration: iteration, wall_s or cum_flops."""
        return {"iteration": lambda: iteration, "wall_s": lambda: self.seconds_through(iteration),
                "cum_flops": lambda: self.flops_through(iteration)}[axis]()

    @functools.cached_property
    def config(self) -> dict:
        """The run's saved config.yaml (empty if absent, e.g. a hand-made folder)."""
        path = self.path / "config.yaml"
        return (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}

    @property
    def seed(self):
        seeds = [o.split("=", 1)[1] for o in self.overrides if o.startswith("seed=")]
        return self.config.get("seed", int(seeds[-1]) if seeds else 0)

    @property
    def task_name(self) -> Optional[str]:
        return (self.config.get("task") or {}).get("name")

    @functools.cached_property
    def test_checksum(self) -> Optional[str]:
        """sha256 of the problems the evaluate stage scores (prepare's split file), None if unknown."""
        split = (self.config.get("evaluate") or {}).get("split", "test")
        prep = self.path / "iter_00" / "prepare"
        manifest = prep / "manifest.json"
        if manifest.is_file():
            meta = json.loads(manifest.read_text()).get("files", {}).get(f"{split}.jsonl")
            if meta:
                return meta["sha256"]
        path = prep / f"{split}.jsonl"
        return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


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


def final_metric(run_dir: Path, metric: str, stage: str = "evaluate") -> Optional[float]:
    """The metric of the last metrics row of `stage` (None if there is none or it lacks the metric)."""
    rows = [r for r in load_run(run_dir).rows if r.get("stage") == stage]
    return rows[-1].get(metric) if rows else None


def metric_names(run_dir: Path) -> list[str]:
    """Every "<stage>.<metric>" with a number in a run's metrics.jsonl."""
    names = {f"{r.get('stage')}.{k}" for r in load_run(run_dir).rows for k, v in r.items()
             if k not in ("iteration", "stage") and isinstance(v, (int, float)) and not isinstance(v, bool)}
    return sorted(names)


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


def redone_work(run_dir: Path) -> dict:
    """What interruptions cost a run, from its events.jsonl: each stage that started but was cut
    off before it finished (it is started again after the restart), and the seconds between its
    start and the restart (an upper bound on the work lost: a training stage resumes from its last
    checkpoint, a sampling stage from its last chunk)."""
    path = Path(run_dir) / "events.jsonl"
    events = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    cut, open_stage = [], None
    for e in events:
        if e["event"] == "stage_start":
            open_stage = e
        elif e["event"] == "stage_done":
            open_stage = None
        elif e["event"] == "run_start" and open_stage is not None:
            cut.append({"iteration": open_stage["iteration"], "stage": open_stage["stage"],
                        "seconds": round(e["t"] - open_stage["t"], 1)})
            open_stage = None
    return {"restarts": sum(e["event"] == "run_start" for e in events) - 1 if events else 0,
            "stages_redone": cut, "seconds_redone_at_most": round(sum(c["seconds"] for c in cut), 1)}


def slurm_jobs(root: str) -> dict[Path, dict]:
    """Run folder -> the `slurm.json` the Slurm launcher writes at submission (job id, the job's
    overrides), also for jobs still in the queue, whose folder holds nothing else yet."""
    out = {}
    for f in Path(root).rglob("slurm.json") if Path(root).is_dir() else []:
        try:
            info = json.loads(f.read_text())
            out[f.parent.resolve()] = {**info, "job_id": str(info["job_id"])}
        except (OSError, ValueError, KeyError):
            continue
    return out


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


def present_metrics(runs: list[Run], metrics: Optional[list[str]] = None) -> list[str]:
    return [m for m in (metrics or HEADLINE) if any(m in e for r in runs for e in r.evaluations())]


def x_columns(runs: list[Run]) -> list[str]:
    """Cumulative compute columns the runs can fill: wall_s always, cum_flops if they report FLOPs."""
    has_flops = any("flops" in row or "cum_flops" in row for r in runs for row in r.rows)
    return ["wall_s"] + (["cum_flops"] if has_flops else [])


def comparison_rows(runs: list[Run], metrics: Optional[list[str]] = None) -> tuple[list[str], list[dict]]:
    """One row per run and evaluated iteration. Returns (metric columns, rows)."""
    common = set.intersection(*(set(r.overrides) for r in runs)) if runs else set()
    present = present_metrics(runs, metrics)
    xs = x_columns(runs)
    table = []
    for run in runs:
        differing = " ".join(o for o in run.overrides if o not in common and not o.startswith(("output_root=",)))
        evals = run.evaluations()
        if not evals:
            table.append({"run": run.name, "recipe": run.recipe, "overrides": differing, "iteration": None,
                          **{m: None for m in present}, **{x: None for x in xs}, "status": status(run)})
        for e in evals:
            it = e["iteration"]
            table.append({"run": run.name, "recipe": run.recipe, "overrides": differing, "iteration": it,
                          **{m: e.get(m) for m in present}, "wall_s": round(run.seconds_through(it), 1),
                          **({"cum_flops": run.flops_through(it)} if "cum_flops" in xs else {}),
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


X_LABELS = {"iteration": "iteration", "wall_s": "cumulative wall seconds", "cum_flops": "cumulative FLOPs"}


def plot(runs: list[Run], path: str, metric: str = "accuracy", x: str = "iteration",
         groups: Optional[dict[str, list[Run]]] = None) -> int:
    """One line per run, or per group of seeds: its mean, with a band for the 95% t-interval
    (the x of a group's point is its seeds' mean x). Returns how many bands it drew."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from .stats import INTERVAL, t_interval

    fig, ax = plt.subplots(figsize=(6, 4))
    bands = 0
    for label, members in (groups or {f"{r.name} ({r.recipe})": [r] for r in runs}).items():
        pts = []
        for it in sorted({e["iteration"] for r in members for e in r.evaluations()}):
            at = [(r.x_at(it, x), e[metric]) for r in members for e in r.evaluations()
                  if e["iteration"] == it and e.get(metric) is not None]
            if at and all(xv is not None for xv, _ in at):
                mean, half = t_interval([v for _, v in at])
                pts.append((sum(xv for xv, _ in at) / len(at), mean, half or 0.0))
        if pts:
            xs, ys, hs = zip(*pts)
            line, = ax.plot(xs, ys, marker="o", label=label + (f" (n={len(members)})" if groups else ""))
            if groups:
                lo, hi = [y - h for y, h in zip(ys, hs)], [y + h for y, h in zip(ys, hs)]
                if all(0 <= y <= 1 for y in ys):  # a fraction: draw the band within [0, 1] (tables keep it whole)
                    lo, hi = [max(v, 0.0) for v in lo], [min(v, 1.0) for v in hi]
                ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
                bands += 1
    if x == "iteration":
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(X_LABELS[x])
    ax.set_ylabel(f"held-out {metric}")
    if groups:
        ax.set_title(f"bands: {INTERVAL}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return bands


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
