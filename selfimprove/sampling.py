"""The sampling loop every sampling stage shares: problems drawn per iteration, prompts sampled in
resumable chunks, optionally by several shard jobs (sharding.py)."""
from __future__ import annotations

import json
import random
import re
import time

from . import compute, sharding
from .backends import SamplingParams
from .context import StageContext
from .rundir import read_jsonl


def sample_problems(ctx: StageContext, path: str, limit) -> list[dict]:
    problems = read_jsonl(path)
    if limit is not None and limit < len(problems):
        problems = random.Random(ctx.seed).sample(problems, limit)
    return problems


def run_sampler(ctx: StageContext, sampler, prompts: list[str], params: SamplingParams, label: str):
    """Sample with a progress bar, cut each completion after its answer line; returns the
    completions and throughput metrics.

    Prompts go to the engine in chunks of `backend.chunk_prompts`, each saved in the stage's
    resume folder as it finishes, so a killed stage resumes at its first missing chunk. A chunk's
    seed depends only on its index, so a resumed stage samples exactly what an uninterrupted one
    would (and one chunk is one engine call, as before chunking). A chunk file also keeps the
    chunk's token counts, which a resumed stage adds back to its compute accounting. With `shards`
    > 1 in the stage's section, the missing chunks are sampled by that many jobs first
    (selfimprove/sharding.py) and then read back here in order: the same samples as one process."""
    size = max(1, int(getattr(ctx.backend_cfg, "chunk_prompts", 0) or len(prompts) or 1))
    tag = re.sub(r"[^\w.=-]+", "_", label)
    n_chunks = -(-len(prompts) // size)
    sharded = _sample_in_shards(ctx, prompts, params, tag, size, n_chunks)
    outs: list[list[str]] = []
    n = chars = reused = 0
    start = time.time()
    with ctx.ui.progress(f"{ctx.name}: {label}", total=len(prompts)) as advance:
        for c in range(n_chunks):
            saved = sharding.chunk_path(ctx.resume_dir, tag, c)
            if saved.exists():
                kept = json.loads(saved.read_text())
                chunk = kept["texts"]
                compute.add(**kept["compute"])
                advance(len(chunk))
                reused += c not in sharded["chunks"]
            else:
                chunk = sharding.sample_chunk(sampler, ctx.task, prompts, params, c, size, saved, progress=advance)
                n += sum(len(o) for o in chunk)
                chars += sum(len(t) for o in chunk for t in o)
            outs.extend(chunk)
    n, chars = n + sharded["samples"], chars + sharded["chars"]
    seconds = max(time.time() - start + sharded["seconds"], 1e-9)
    speed = {"samples_per_s": round(n / seconds, 1), "chars_per_s": round(chars / seconds, 1)}
    extra = {k: sharded[k] for k in ("shards", "shard_jobs", "shard_retries", "shard_import_s", "shard_load_s",
                                      "shard_sample_s") if k in sharded}
    return outs, speed | ({"resumed_chunks": reused} if reused else {}) | extra


def _sample_in_shards(ctx: StageContext, prompts, params, tag: str, size: int, n_chunks: int) -> dict:
    """Missing chunks sampled by `shards` jobs (nothing when shards is 1 or every chunk exists)."""
    none = {"chunks": set(), "samples": 0, "chars": 0, "seconds": 0.0}
    wanted = int(ctx.cfg.get("shards", 1) or 1)
    if wanted <= 1 or ctx.sharding is None:
        return none
    shards, warning = sharding.plan_shards(wanted, n_chunks, size, len(prompts))
    if warning:
        ctx.ui.log(f"[yellow]{ctx.name}: {warning}[/]")
    missing = [c for c in range(n_chunks) if not sharding.chunk_path(ctx.resume_dir, tag, c).exists()]
    if shards <= 1 or not missing:
        return none
    got = sharding.run_shards(ctx, prompts, params, tag, size, missing, shards)
    return got | {"chunks": set(missing), "shards": shards}
