"""Shared by every kill-and-resume test (integration tests and the fault suite): run a CLI command
and SIGKILL it the moment a given file appears in its run directory, and the comparisons that
decide whether a resumed run equals an uninterrupted one."""
import os
import signal
import subprocess
import time
from pathlib import Path

from selfimprove.rundir import read_jsonl


def sigkill_when_written(cmd: list[str], path, timeout: float = 600, env=None) -> None:
    """Start `cmd`, SIGKILL it as soon as `path` exists (polled every 5 ms), and require that it
    got that far (a run that finished first proves nothing about resume)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + timeout
    while not path.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    try:
        os.kill(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # it ended first: the assertion below says so
    _, err = proc.communicate()
    assert path.exists(), f"the run ended before it wrote {path}:\n{err[-3000:]}"


def comparable(run: Path) -> list[dict]:
    """metrics.jsonl without what differs by design between a resumed and an uninterrupted run:
    timings and the resume bookkeeping (resumed_from_step, resumed_chunks)."""
    def same_by_design(key: str) -> bool:
        return not ("seconds" in key or "per_s" in key or key.startswith(("resumed_", "time_share")))

    return [{k: v for k, v in r.items() if same_by_design(k)} for r in read_jsonl(run / "metrics.jsonl")]


def stage_mtimes(run: Path) -> dict:
    """When each finished stage's manifest was written: equal before and after a resume means no
    finished stage was recomputed."""
    return {str(p): p.stat().st_mtime_ns for p in run.glob("iter_*/*/manifest.json")}


def resumed_from(run: Path, stage_dir: str) -> dict:
    """The finished stage's resume bookkeeping (`resumed_from_step` or `resumed_chunks`)."""
    import json

    metrics = json.loads((run / stage_dir / "manifest.json").read_text())["metrics"]
    return {k: v for k, v in metrics.items() if k.startswith("resumed_")}
