"""Slurm from the user's side: is sbatch there, what did sbatch refuse and what to set instead,
and what state is a job in. Only the Slurm command-line tools are used (sinfo, squeue), which
work without Slurm's accounting database."""
from __future__ import annotations

import shutil
import subprocess
import time
from typing import Optional


class SlurmError(RuntimeError):
    """A Slurm problem the user can fix; the message says how."""


def require_sbatch(what: str) -> None:
    if shutil.which("sbatch") is None:
        raise SlurmError(
            f"{what} submits Slurm jobs, but `sbatch` is not on PATH on this machine. Run from a Slurm login "
            "node (or load its module, e.g. `module load slurm`), or sweep here without Slurm: "
            "drop hydra/launcher=slurm (one job after another) or use hydra/launcher=local_parallel.")


def _run(cmd: list[str]) -> Optional[str]:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return p.stdout if p.returncode == 0 else None


def partitions() -> list[str]:
    out = _run(["sinfo", "-h", "-o", "%P"]) or ""
    # sinfo marks the default partition with a star
    return sorted({p.strip().replace("*", " (the default)") for p in out.splitlines() if p.strip()})


def nodes() -> list[str]:
    """One line per node kind: CPUs, memory and generic resources (GPUs)."""
    out = _run(["sinfo", "-h", "-o", "%P %c %m %G"]) or ""
    lines = []
    for line in sorted(set(out.splitlines())):
        parts = line.split()
        if len(parts) == 4:
            lines.append(f"partition {parts[0].rstrip('*')}: {parts[1]} CPUs, {int(parts[2]) // 1024} GB memory, "
                         f"gres {parts[3] if parts[3] != '(null)' else 'none (no GPUs)'}")
    return lines


def explain_sbatch_refusal(stderr: str, prefix: str = "hydra.launcher") -> str:
    """Slurm's refusal in one paragraph, with the setting that fixes it."""
    said = " ".join(line.replace("sbatch: error:", "").strip() for line in stderr.strip().splitlines()
                    if line.strip() and "Traceback" not in line) or "(no message)"
    low = said.lower()
    if "invalid partition" in low:
        names = partitions()
        advice = (f"Pick one of this cluster's partitions ({', '.join(names) or 'sinfo lists none'}) with "
                  f"{prefix}.partition=NAME, or leave {prefix}.partition=null for the default one.")
    elif "gres" in low or "gpu" in low:
        advice = (f"The partition has no GPUs of the requested kind: set {prefix}.gpus_per_node=0 "
                  f"(or use hydra/launcher=slurm_cpu) on a CPU-only cluster, or pick a GPU partition with "
                  f"{prefix}.partition=NAME.")
    elif "memory" in low or "node configuration is not available" in low or "cpu count" in low:
        advice = (f"No node has that many CPUs or that much memory: lower {prefix}.mem_gb and "
                  f"{prefix}.cpus_per_task (and {prefix}.gpus_per_node).")
    elif "time limit" in low:
        advice = f"Lower {prefix}.timeout_min below the partition's limit (sinfo shows it)."
    else:
        advice = f"Check the {prefix}.* settings (partition, gpus_per_node, cpus_per_task, mem_gb, timeout_min)."
    sizes = nodes()
    have = f" This cluster has: {'; '.join(sizes)}." if sizes else ""
    return f"sbatch refused the jobs: \"{said}\". {advice}{have}"


def job_states(job_ids: list[str], finished: bool = False) -> dict[str, str]:
    """squeue's state (PENDING, RUNNING, ...) of the listed jobs that are still queued or running
    (an array task is named ARRAYID_TASK); with finished=True also of those that ended in the last
    few minutes (COMPLETED, TIMEOUT, FAILED, ...: Slurm's MinJobAge), which plain squeue omits."""
    if not job_ids or shutil.which("squeue") is None:
        return {}
    out = _run(["squeue", "-h", "-r", "-o", "%i|%T", *(["-t", "all"] if finished else []),
                "-j", ",".join(sorted({j.split('_')[0] for j in job_ids}))])
    if out is None:
        return {}
    states = {}
    for line in out.splitlines():
        if "|" in line:
            jid, state = line.strip().split("|", 1)
            states[jid] = state
    return {j: states[j] for j in job_ids if j in states}


ENDED = {"BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED",
         "TIMEOUT"}


def wait_for_jobs(jobs, poll_s: float = 2.0, squeue_every_s: float = 15.0) -> dict[str, str]:
    """Until every job has left its result file or has ended without one (killed, cancelled, timed
    out) for a while. Returns the state Slurm last gave each job that ended without a result
    ("gone" once squeue no longer knows it). squeue, not submitit's sacct polling, which fails on
    clusters without Slurm's accounting database and then warns every few seconds."""
    waiting, ended_since, last, last_state = list(jobs), {}, 0.0, {}
    while waiting:
        waiting = [j for j in waiting if not j.paths.result_pickle.exists()]
        if waiting and time.time() - last >= squeue_every_s:
            last = time.time()
            states = job_states([j.job_id for j in waiting], finished=True)
            for j in list(waiting):
                state = states.get(j.job_id, "gone").split()[0]
                if state not in ENDED | {"gone"}:
                    ended_since.pop(j.job_id, None)
                    continue
                if state != "gone" or j.job_id not in last_state:
                    last_state[j.job_id] = state
                # a grace period: a result file written just before the end may show up late (NFS)
                if time.time() - ended_since.setdefault(j.job_id, time.time()) > 3 * squeue_every_s:
                    waiting.remove(j)
        if waiting:
            time.sleep(poll_s)
    return {j.job_id: last_state.get(j.job_id, "gone") for j in jobs if not j.paths.result_pickle.exists()}
