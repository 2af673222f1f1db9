"""Sampling spread over several jobs (`generate.shards=N`, `evaluate.shards=N`).

A sampling stage already saves its prompts in chunks of `backend.chunk_prompts`, each seeded by
its index alone (sampling.py `run_sampler`). Shards split that list of chunks: shard i
samples chunks i, i+N, i+2N, ... into the stage's resume folder, in its own process with its own
engine, and skips chunks that already exist. The stage then reads every chunk back in order, so
the merged samples are those of a one-process run with the same seed, whatever N is. A shard that
dies leaves its finished chunks; only the missing ones are sampled again (by a retry round, or by
the next run of the same command).

Shards are submitit jobs: local processes (`sharding.launcher=local`), or Slurm jobs of one array
(`sharding.launcher=slurm`; `auto` picks Slurm inside a Slurm job with `sbatch` on PATH).
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Optional

CHUNK_SEED_STRIDE = 1_000_033  # a chunk's seed = stage seed + stride * chunk index


def chunk_path(resume_dir: Path, tag: str, c: int) -> Path:
    return resume_dir / f"{tag}-{c:05d}.json"


def chunk_params(params, c: int):
    return replace(params, seed=params.seed + CHUNK_SEED_STRIDE * c)


def sample_chunk(sampler, task, prompts: list[str], params, c: int, size: int, saved: Path, progress=None):
    """Sample chunk `c` and save it atomically; returns its completions (cut after the answer)."""
    from . import compute
    from .rundir import write_json

    lo = c * size
    with compute.metering() as meter:  # the chunk's token counts are saved with it (resume, shards)
        got = sampler.generate(prompts[lo:lo + size], chunk_params(params, c), progress=progress)
    chunk = [[task.truncate(t) for t in o] for o in got]
    write_json(saved, {"texts": chunk, "compute": meter.counts})
    return chunk


def shard_chunks(missing: list[int], shards: int) -> list[list[int]]:
    """Round-robin: neighbouring chunks (similar work) go to different shards."""
    return [missing[i::shards] for i in range(shards) if missing[i::shards]]


def plan_shards(wanted: int, n_chunks: int, chunk_size: int, n_prompts: int) -> tuple[int, Optional[str]]:
    """The shard count to use and a warning when it had to be lowered: a shard gets whole chunks,
    so there can be no more shards than chunks (and never more than prompts)."""
    if wanted <= n_chunks:
        return wanted, None
    use = max(1, n_chunks)
    if n_chunks >= n_prompts:
        return use, f"shards={wanted} but there are only {n_prompts} prompt(s): using {use} shard(s)."
    return use, (f"shards={wanted} but the {n_prompts} prompts make only {n_chunks} chunk(s) of "
                 f"backend.chunk_prompts={chunk_size}: using {use} shard(s). A shard samples whole chunks; to "
                 f"split further, lower backend.chunk_prompts, e.g. backend.chunk_prompts={-(-n_prompts // wanted)} "
                 f"(this changes the samples, as chunk seeds follow the chunks).")


def sample_shard(job: dict) -> dict:
    """One shard's work, run in its own process: sample the listed chunks that do not exist yet.
    Returns counts and where its time went (imports, engine start-up, sampling)."""
    t0 = time.time()
    import torch

    from .backends import build_sampler

    if job["threads"] > 0:
        torch.set_num_threads(job["threads"])
    resume_dir, todo = Path(job["resume_dir"]), []
    for c in job["chunks"]:
        if not chunk_path(resume_dir, job["tag"], c).exists():  # a requeued shard redoes only what is missing
            todo.append(c)
    t1 = t2 = time.time()
    samples, chars = 0, 0
    if todo:
        sampler = build_sampler(job["backend_cfg"], job["model_path"], job["model_cfg"], job["device"])
        t2 = time.time()
        try:
            for c in todo:
                chunk = sample_chunk(sampler, job["task"], job["prompts"], job["params"], c, job["size"],
                                     chunk_path(resume_dir, job["tag"], c))
                samples += sum(len(o) for o in chunk)
                chars += sum(len(t) for o in chunk for t in o)
        finally:
            sampler.close()
    return {"chunks": len(todo), "samples": samples, "chars": chars, "import_s": t1 - t0, "load_s": t2 - t1,
            "sample_s": time.time() - t2}


def _in_slurm_job() -> bool:
    return bool(os.environ.get("SLURM_JOB_ID")) and shutil.which("sbatch") is not None


def _executor(sharding, folder: Path, shards: int):
    """A submitit executor for Slurm shards (an array), or None for local ones (see _submit_local)."""
    import submitit

    launcher = sharding.launcher
    if launcher == "auto":
        launcher = "slurm" if _in_slurm_job() else "local"
    if launcher == "slurm":
        from .slurm import require_sbatch

        require_sbatch("sharding.launcher=slurm")
        ex = submitit.AutoExecutor(folder=str(folder), cluster="slurm")
        env = os.environ
        # Each shard asks for what this job has unless told otherwise (one vLLM engine per shard).
        params: dict[str, Any] = {
            "timeout_min": sharding.timeout_min,
            "slurm_array_parallelism": shards,
            "cpus_per_task": sharding.cpus_per_task or int(env.get("SLURM_CPUS_PER_TASK", 1)),
            "mem_gb": sharding.mem_gb or max(1, int(env.get("SLURM_MEM_PER_NODE", 4096)) // 1024),
            "gpus_per_node": sharding.gpus_per_task if sharding.gpus_per_task is not None
            else int(env.get("SLURM_GPUS_ON_NODE", 0) or 0),
            "name": "selfimprove-shard",
        }
        partition = sharding.partition or env.get("SLURM_JOB_PARTITION")
        if partition:
            params["slurm_partition"] = partition
        ex.update_parameters(**params)
        return ex, "slurm"
    return None, "local"


def _submit_local(sharding, folder: Path, args: list[dict], device: str) -> list:
    """One local process per shard. On a machine with GPUs (device cuda) each shard sees one GPU
    of its own, round robin (submitit's local executor otherwise hides every GPU from its jobs)."""
    import submitit
    import torch

    gpus = torch.cuda.device_count() if device.startswith("cuda") else 0
    jobs = []
    for i, arg in enumerate(args):
        ex = submitit.AutoExecutor(folder=str(folder), cluster="local")
        if gpus:
            ex.update_parameters(timeout_min=sharding.timeout_min, gpus_per_node=1, visible_gpus=[i % gpus])
            arg = arg | {"device": "cuda"}  # the one visible GPU
        else:
            ex.update_parameters(timeout_min=sharding.timeout_min, gpus_per_node=0)
        jobs.append(ex.submit(sample_shard, arg))
    return jobs


def run_shards(ctx, prompts: list[str], params, tag: str, size: int, missing: list[int], shards: int) -> dict:
    """Sample the `missing` chunks in `shards` jobs and wait for them. Chunks still missing after
    `sharding.retries` extra rounds (a shard died each time) stop the stage with the shard's log."""
    import torch

    from .errors import StageError

    sharding = ctx.sharding
    folder = ctx.resume_dir / f"{tag}-shards"
    threads = sharding.threads or max(1, torch.get_num_threads() // shards)
    job_base = {"resume_dir": str(ctx.resume_dir), "tag": tag, "size": size, "prompts": prompts, "params": params,
                "task": ctx.task, "model_path": ctx.inputs["model"], "backend_cfg": ctx.backend_cfg,
                "model_cfg": ctx.model_cfg, "device": ctx.device, "threads": threads}
    totals = {"shard_jobs": 0, "samples": 0, "chars": 0, "shard_retries": 0}
    start = time.time()
    for attempt in range(sharding.retries + 1):
        todo = [c for c in missing if not chunk_path(ctx.resume_dir, tag, c).exists()]
        if not todo:
            break
        groups = shard_chunks(todo, shards)
        executor, kind = _executor(sharding, folder, len(groups))
        if attempt:
            totals["shard_retries"] += 1
            ctx.ui.log(f"[yellow]{ctx.name}: {len(todo)} chunk(s) still missing; sampling them again[/]")
        args = [job_base | {"chunks": g} for g in groups]
        jobs = (executor.map_array(sample_shard, args) if kind == "slurm"
                else _submit_local(sharding, folder, args, ctx.device))
        ctx.ui.log(f"{ctx.name}: {len(todo)} chunk(s) in {len(groups)} {kind} shard job(s) "
                   f"({', '.join(j.job_id for j in jobs)})")
        failures = []
        if kind == "slurm":
            from .slurm import wait_for_jobs

            ended = wait_for_jobs(jobs)  # squeue, not submitit's sacct polling (no accounting database needed)
        for job, group in zip(jobs, groups):
            try:
                if kind == "slurm" and not job.paths.result_pickle.exists():
                    raise RuntimeError(f"the shard job ended without a result (Slurm's last state: "
                                       f"{ended.get(job.job_id, 'gone')}; cancelled, killed or out of time)")
                got = job.result()
                totals["samples"] += got["samples"]
                totals["chars"] += got["chars"]
                # the slowest shard's import / engine start-up / sampling seconds: what sharding costs
                for key in ("import_s", "load_s", "sample_s"):
                    totals[f"shard_{key}"] = round(max(totals.get(f"shard_{key}", 0.0), got[key]), 3)
            except Exception as exc:  # noqa: BLE001  (a dead shard: its missing chunks are retried)
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
                failures.append(f"shard job {job.job_id} (chunks {group}): {first[:300]}; log {job.paths.stderr}")
        totals["shard_jobs"] += len(jobs)
    left = [c for c in missing if not chunk_path(ctx.resume_dir, tag, c).exists()]
    if left:
        raise StageError(f"{ctx.name}: {len(left)} of {len(missing)} chunk(s) were not sampled after "
                         f"{sharding.retries + 1} round(s) of shard jobs. Last failures:\n  " + "\n  ".join(failures) +
                         "\nEvery finished chunk is kept: fix the cause and rerun the same command to sample only "
                         "the missing ones (or raise sharding.retries).")
    totals["seconds"] = time.time() - start
    return totals
