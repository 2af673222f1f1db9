"""Against a real Slurm (`scripts/local_slurm.sh start` makes one on this machine): a sweep of two
recipes x two seeds, `selfimprove ls` while jobs are queued, running and finished, `compare` over
the sweep folder, a job requeued mid-run and a job stopped by its time limit that both resume to
the metrics of an uninterrupted run, and sbatch's refusals as one-paragraph errors.

Not in the default suite (minutes of real jobs): `python -m pytest -q -m slurm tests/slurm`.
Skipped where `sbatch` is missing or no Slurm controller answers."""
import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from selfimprove.analysis.runs import find_runs, redone_work, status
from tests.helpers import CLI

pytestmark = pytest.mark.slurm


def _slurm_up() -> bool:
    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        return False
    p = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    return p.returncode == 0 and any(s in p.stdout for s in ("idle", "mix", "alloc"))


if not _slurm_up():
    pytest.skip("no Slurm here: run scripts/local_slurm.sh start (as root) first", allow_module_level=True)

DEBUG = ["profile=debug", "threads=1", "tracking.quiet=true"]
ENV = os.environ | {"COLUMNS": "250", "OMP_NUM_THREADS": "1"}


def selfimprove(*args, timeout=1200):
    return subprocess.run([*CLI, *args], capture_output=True, text=True,
                          timeout=timeout, env=ENV)


def start(*args):
    return subprocess.Popen([*CLI, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)


def results(run_dir: Path) -> list[dict]:
    """metrics.jsonl without the timing columns: what must not change after an interruption."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    # timings and the resume bookkeeping (resumed_from_step, resumed_chunks) differ by design
    return [{k: v for k, v in r.items() if k != "seconds" and "per_s" not in k and not k.startswith("resumed_")
             and not k.startswith("time_share") and k not in ("flops", "wall_seconds", "cum_seconds")} for r in rows]


class ReleaseHolds(threading.Thread):
    """Slurm holds a requeued job for ~2 minutes (its BeginTime) before it may start again; to keep
    the tests short this lets it start at once (scontrol update StartTime=now). What resumes, and
    how, is unchanged."""

    def __init__(self):
        super().__init__(daemon=True)
        self.jobs, self.released, self.stop = set(), 0, threading.Event()

    def run(self):
        while not self.stop.wait(2):
            for job in list(self.jobs):
                out = subprocess.run(["squeue", "-h", "-j", job.split("_")[0], "-o", "%i %r"], capture_output=True,
                                     text=True).stdout
                for line in out.splitlines():
                    jid, reason = (line.split() + [""])[:2]
                    if reason == "BeginTime":
                        subprocess.run(["scontrol", "update", f"JobId={jid}", "StartTime=now"], capture_output=True)
                        self.released += 1


@pytest.fixture
def holds():
    t = ReleaseHolds()
    t.start()
    yield t
    t.stop.set()


def wait_for(predicate, timeout_s, what):
    end = time.time() + timeout_s
    while time.time() < end:
        got = predicate()
        if got:
            return got
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def test_sweep_of_two_recipes_and_two_seeds_with_ls_and_compare(tmp_path):
    root = tmp_path / "out"
    # one job at a time: the later ones are certainly seen queued while the first one runs
    p = start("run", "-m", "hydra/launcher=slurm_cpu", "hydra.launcher.array_parallelism=1", "recipe=star,rest_em",
              "seed=0,1", *DEBUG, f"output_root={root}")
    seen = set()

    def look():
        ls = selfimprove("ls", str(root), timeout=60).stdout
        seen.update(s for s in ("PENDING", "RUNNING", "queued", "running at iteration") if s in ls)
        return {"PENDING", "RUNNING", "queued", "running at iteration"} <= seen

    wait_for(look, 600, "ls to show a queued job and a running one")
    out, err = p.communicate(timeout=1800)
    assert p.returncode == 0, out + err
    runs = find_runs([str(root / "sweep")])
    assert sorted(r.path.name for r in runs) == sorted(
        f"profile=debug,recipe={r},seed={s}" for r in ("star", "rest_em") for s in (0, 1))
    assert all(status(r) == "finished" and r.evaluations() for r in runs)
    ls = selfimprove("ls", str(root)).stdout
    assert ls.count("finished") == 4 and "PENDING" not in ls
    assert all((r.path / "slurm.json").exists() for r in runs)
    cmp = selfimprove("compare", str(root / "sweep"), "--format", "json")
    assert cmp.returncode == 0, cmp.stderr
    rows = json.loads(cmp.stdout)
    assert {r["run"] for r in rows} == {r.path.name for r in runs} and all(r["accuracy"] is not None for r in rows)


def _reference(tmp_path, *args) -> Path:
    """The same run without Slurm and without interruption."""
    p = _start_reference(tmp_path, *args)
    out, err = p.communicate(timeout=2400)
    assert p.returncode == 0, err
    return tmp_path / "ref" / "ref"


def _start_reference(tmp_path, *args) -> subprocess.Popen:
    """The reference run in the background: with threads=1 it takes the second core while the Slurm
    job (one CPU) runs, so a test costs one run's time, not two."""
    return start("run", "recipe=star", *DEBUG, *args, f"output_root={tmp_path / 'ref'}", "run_name=ref")


def _seed_sft_steps_lasting(tmp_path, seconds: float) -> int:
    """How many seed-model steps take `seconds` on this machine now, measured by a short run: a time
    limit or a requeue must land mid-training whether the machine is fast or loaded."""
    steps = 300
    p = selfimprove("run", "recipe=star", *DEBUG, "iterations=1", f"seed_sft.steps={steps}",
                    f"output_root={tmp_path / 'calibrate'}", "run_name=c")
    assert p.returncode == 0, p.stderr
    events = [json.loads(line) for line in (tmp_path / "calibrate" / "c" / "events.jsonl").read_text().splitlines()]
    took = next(e["seconds"] for e in events if e["event"] == "stage_done" and e["stage"] == "seed_sft")
    return max(steps, int(seconds * steps / took) // 50 * 50)


def _slurm_job(run_dir: Path) -> str:
    return wait_for(lambda: (run_dir / "slurm.json").exists() and json.loads((run_dir / "slurm.json").read_text())["job_id"],
                    120, "slurm.json")


def test_requeued_job_resumes_to_the_same_metrics(tmp_path, holds):
    root = tmp_path / "out"
    # a seed model that trains ~60 s here, checkpointing every 10 steps: the requeue lands in it
    longer = [f"seed_sft.steps={_seed_sft_steps_lasting(tmp_path, 60)}", "seed_sft.save_steps=10"]
    p = start("run", "-m", "hydra/launcher=slurm_cpu", "recipe=star", "seed=0", *longer, *DEBUG, f"output_root={root}")
    ref = _start_reference(tmp_path, "seed=0", *longer)
    run_dir = next(_wait_for_run_dir(root))
    job = _slurm_job(run_dir)
    holds.jobs.add(job)

    def first_checkpoint():
        assert not (run_dir / "iter_00" / "seed_sft").exists(), \
            "the seed model finished before its first checkpoint was seen: raise the seconds asked of it"
        return list(run_dir.glob("iter_00/.seed_sft.partial/checkpoints/checkpoint-*/trainer_state.json"))

    # requeue while the seed model trains, after its first checkpoint. Slurm sends SIGTERM, which
    # submitit ignores, and SIGKILL KillWait (10 s here) later: the run goes on meanwhile.
    wait_for(first_checkpoint, 900, "the seed model's first checkpoint")
    subprocess.run(["scontrol", "requeue", job], check=True)
    out, err = p.communicate(timeout=2400)
    assert p.returncode == 0, out + err + _job_story(root, job)
    work = redone_work(run_dir)
    print(f"\nrequeue: {json.dumps(work)}")
    assert work["restarts"] == 1 and [(c["iteration"], c["stage"]) for c in work["stages_redone"]] == [(0, "seed_sft")], work
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    restart = next(e["t"] for e in events if e["event"] == "run_start" and e.get("slurm_restart") == 1)
    done_before = {(e["iteration"], e["stage"]) for e in events if e["event"] == "stage_done" and e["t"] < restart}
    started_after = {(e["iteration"], e["stage"]) for e in events if e["event"] == "stage_start" and e["t"] > restart}
    assert started_after and not done_before & started_after  # resumed mid-run; finished stages not redone
    out, err = ref.communicate(timeout=2400)
    assert ref.returncode == 0, err
    assert results(run_dir) == results(tmp_path / "ref" / "ref")


def _job_story(root: Path, job: str) -> str:
    """What a failed job's logs and the controller said about it: CI keeps no files, only output."""
    logs = "".join(f"\n--- {f}\n{f.read_text()[-3000:]}" for f in sorted((root / "sweep" / ".submitit").rglob("*_log.*")))
    ctld = Path("/var/log/slurm/slurmctld.log")
    said = [ln for ln in (ctld.read_text().splitlines() if ctld.exists() else []) if f"JobId={job} " in ln + " "]
    return logs + "\n--- slurmctld\n" + "\n".join(said[-40:])


def _wait_for_run_dir(root: Path):
    return iter(wait_for(lambda: [d for d in (root / "sweep").glob("*recipe=star*") if d.is_dir()], 120,
                         "the sweep's run folder"))


def test_job_stopped_by_its_time_limit_is_requeued_and_finishes(tmp_path, holds):
    root = tmp_path / "out"
    # a seed model asked to train ~300 s (the short calibration run overstates a step: ~160 s), checkpointing
    # every 50 steps
    longer = [f"seed_sft.steps={_seed_sft_steps_lasting(tmp_path, 300)}", "seed_sft.save_steps=50", "iterations=1"]
    # A 2-minute limit, warned 30 s before it. Slurm sends the warning up to a minute early, so
    # a go lasts 30-90 s, less than the run needs: each time submitit requeues the job and it
    # resumes its run folder (the seed model from its last checkpoint).
    p = start("run", "-m", "hydra/launcher=slurm_cpu", "hydra.launcher.timeout_min=2",
              "hydra.launcher.signal_delay_s=30", "hydra.launcher.max_num_timeout=10", "recipe=star", "seed=0",
              *longer, *DEBUG, f"output_root={root}")
    ref = _start_reference(tmp_path, "seed=0", *longer)
    run_dir = next(_wait_for_run_dir(root))
    job = _slurm_job(run_dir)
    holds.jobs.add(job)
    out, err = p.communicate(timeout=2400)
    assert p.returncode == 0, out + err + _job_story(root, job)
    work = redone_work(run_dir)
    print(f"\ntime limit: {json.dumps(work)}")
    logs = "".join(f.read_text() for f in (root / "sweep" / ".submitit").rglob("*_log.*"))  # submitit INFO goes to .out
    assert work["restarts"] >= 1 and "this job is timed-out" in logs and "Requeued job" in logs, work
    out, err = ref.communicate(timeout=2400)
    assert ref.returncode == 0, err
    assert results(run_dir) == results(tmp_path / "ref" / "ref")


def test_cancelled_job_is_reported_with_its_slurm_state_and_resumes(tmp_path, holds):
    """scancel on a running job: the sweep says which job ended and in what state, in one error;
    the same command again resumes its run folder to the end."""
    root = tmp_path / "out"
    args = ["run", "-m", "hydra/launcher=slurm_cpu", "recipe=star", "seed=0", "iterations=1",
            f"seed_sft.steps={_seed_sft_steps_lasting(tmp_path, 60)}", "seed_sft.save_steps=10", *DEBUG,
            f"output_root={root}"]
    p = start(*args)
    run_dir = next(_wait_for_run_dir(root))
    job = _slurm_job(run_dir)
    wait_for(lambda: list(run_dir.glob("iter_00/.seed_sft.partial/checkpoints/checkpoint-*/trainer_state.json")),
             900, "the seed model's first checkpoint")
    subprocess.run(["scancel", job], check=True)
    out, err = p.communicate(timeout=600)
    assert p.returncode == 2 and "Traceback" not in err, out + err
    assert f"slurm job {job}" in err and "Slurm's last state: CANCELLED" in err and "Rerun the same command" in err, err
    again = selfimprove(*args, timeout=1800)
    assert again.returncode == 0, again.stdout + again.stderr
    assert status(next(r for r in find_runs([str(root / "sweep")]))) == "finished"
    work = redone_work(run_dir)  # the second job went on from the seed model's last checkpoint
    assert work["restarts"] == 1 and [(c["iteration"], c["stage"]) for c in work["stages_redone"]] == [(0, "seed_sft")]


def test_sbatch_refusals_are_one_paragraph_with_what_to_set(tmp_path):
    base = ["run", "-m", "recipe=star", "seed=0,1", *DEBUG, f"output_root={tmp_path}"]
    gres = selfimprove(*base, "hydra/launcher=slurm")  # the GPU preset on a node without GPUs
    assert gres.returncode == 2 and "Traceback" not in gres.stderr
    assert "gpus_per_node=0" in gres.stderr and "slurm_cpu" in gres.stderr
    part = selfimprove(*base, "hydra/launcher=slurm_cpu", "hydra.launcher.partition=nope")
    assert part.returncode == 2 and "Traceback" not in part.stderr
    names = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True).stdout.split()
    assert "nope" in part.stderr and all(n.rstrip("*") in part.stderr for n in names)
    mem = selfimprove(*base, "hydra/launcher=slurm_cpu", "hydra.launcher.mem_gb=100000")
    assert mem.returncode == 2 and "Traceback" not in mem.stderr and "mem_gb" in mem.stderr
    for p in (gres, part, mem):
        assert p.stderr.count("selfimprove: error:") == 1 and len(p.stderr.strip().splitlines()) == 1


def test_sharded_generate_runs_as_a_slurm_array(tmp_path):
    """Inside a Slurm job, shards become Slurm jobs (sharding.launcher=auto); same samples as one process."""
    root = tmp_path / "out"
    args = ["recipe=star", "seed=0", "iterations=1", "backend.chunk_prompts=8", *DEBUG]
    p = selfimprove("run", "-m", "hydra/launcher=slurm_cpu", "hydra.launcher.cpus_per_task=1",
                    "generate.shards=2", "sharding.mem_gb=2", *args, f"output_root={root}")
    assert p.returncode == 0, p.stdout + p.stderr
    run_dir = next(r.path for r in find_runs([str(root / "sweep")]))
    manifest = json.loads((run_dir / "iter_01" / "generate" / "manifest.json").read_text())
    assert manifest["metrics"]["shards"] == 2 and manifest["metrics"]["shard_jobs"] == 2
    ref = _reference(tmp_path, "seed=0", "iterations=1", "backend.chunk_prompts=8")
    assert (run_dir / "iter_01" / "generate" / "samples.jsonl").read_text() == \
        (ref / "iter_01" / "generate" / "samples.jsonl").read_text()
