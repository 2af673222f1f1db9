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
        return [r for r in self.rows if r.get("stage") == "evaluate"]

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
