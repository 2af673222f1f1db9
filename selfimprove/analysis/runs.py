"""Run directories as `compare`, `ls` and the results scripts read them: run.json, config.yaml,
metrics.jsonl, events.jsonl, the stages' manifests. Nothing here imports torch, so reading is
instant."""
from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import yaml

from ..compute import COUNTS, flops



EVALUATIONS = ("evaluate", "evaluate_lengths", "evaluate_turns")  # stages whose rows hold held-out scores


class NotARunError(ValueError):
    pass


@dataclass(eq=False)  # one Run per folder read: compared (and hashed) by identity
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
        return [r for r in self.rows if r.get("stage") in EVALUATIONS]

    def seconds_through(self, iteration: int) -> float:
        return sum(r.get("seconds", 0.0) for r in self.rows if r["iteration"] <= iteration)

    @functools.cached_property
    def params(self) -> Optional[int]:
        """N, the parameter count the run's stages recorded (None if none did)."""
        return max((r["params"] for r in self.rows if r.get("params")), default=None)

    def stage_flops(self, row: dict) -> Optional[float]:
        """A metrics row's FLOPs: its recorded `flops`; for a stage that recorded its token counts
        but not the parameter count (so the pipeline could not price them: GRPO's stage today),
        the same formula (compute.flops) with the N the run's other stages recorded."""
        if isinstance(row.get("flops"), (int, float)):
            return float(row["flops"])
        if self.params and any(row.get(k) for k in COUNTS):
            return float(flops({**row, "params": self.params}))
        return None

    def flops_through(self, iteration: int) -> Optional[float]:
        """Cumulative FLOPs through `iteration`'s evaluation, every stage's `stage_flops` summed in
        run order (None if no stage recorded any)."""
        if not any(self.stage_flops(r) is not None for r in self.rows):
            return None
        total, at_eval = 0.0, None
        for r in self.rows:
            if r["iteration"] > iteration:
                break
            total += self.stage_flops(r) or 0.0
            if r["iteration"] == iteration and r.get("stage") in EVALUATIONS:
                at_eval = total
        return at_eval if at_eval is not None else total

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
    def flat_config(self) -> dict:
        """The saved config as dotted keys (`seed_sft.steps`), lists kept whole."""
        return flatten(self.config)

    @property
    def finished(self) -> bool:
        return self.info.get("status") == "finished"

    @functools.cached_property
    def seed_model(self) -> Optional[str]:
        """sha256 of the weights iteration 0 evaluates: those of the last setup stage that wrote a
        model (STaR's seed_sft, Self-Rewarding's M1, SCoRe's two-turn base), from its manifest;
        with seed_sft disabled and no such stage, the pretrained model's identity (provenance).
        Runs that share it started from the same model; None when nothing says."""
        setup = self.config.get("setup") or ["seed_sft"]
        found = None
        for stage in setup:
            manifest = self.path / "iter_00" / stage / "manifest.json"
            if not manifest.is_file():
                continue
            files = json.loads(manifest.read_text()).get("files", {})
            weights = sorted(meta["sha256"] for name, meta in files.items()
                             if name.startswith("model/") and name.endswith(".safetensors"))
            if weights:
                found = weights[0] if len(weights) == 1 else hashlib.sha256("".join(weights).encode()).hexdigest()
        if found is None and not (self.config.get("seed_sft") or {}).get("enabled", True):
            # no setup stage trains one (a pretrained model): iteration 0 evaluates the model itself
            from ..provenance import model_identity

            found = model_identity((self.config.get("model") or {}).get("name_or_path"))
        return found

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


def flatten(d, prefix: str = "") -> dict:
    """{"a": {"b": 1}} -> {"a.b": 1}."""
    out = {}
    for k, v in (d or {}).items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


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


def unique_names(runs: list[Run]) -> dict[Run, str]:
    """A label per run: its folder name, or, where two runs share one (x/run and y/run), as much
    of the path as tells them apart."""
    parts = {r: r.path.resolve().parts for r in runs}
    out = {}
    for r in runs:
        depth = 1
        while depth < len(parts[r]) and any(q is not r and parts[q][-depth:] == parts[r][-depth:] for q in runs):
            depth += 1
        out[r] = "/".join(parts[r][-depth:])
    return out


def split_unfinished(runs: list[Run]) -> tuple[list[Run], list[tuple[Run, str]]]:
    """(finished runs, [(run, its status)] of the failed, interrupted and running ones)."""
    done = [r for r in runs if r.finished]
    return done, [(r, status(r)) for r in runs if not r.finished]


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
        return f"failed: {run.info['error']}" if run.info.get("error") else "failed"
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
