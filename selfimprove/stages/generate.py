"""Sample k completions per problem from the current policy (STaR's rationale generation,
ReST-EM's E-step). One batched call for all problems; rows keep prompt and sample ids."""
from __future__ import annotations

import json
import random
import re
import time
from pathlib import Path
from dataclasses import dataclass
from typing import Optional

from .. import compute, sharding
from ..backends import SamplingParams
from ..config import Problems
from ..rundir import read_jsonl, write_jsonl
from . import StageContext, StageResult, register_stage


@dataclass
class GenerateConfig:
    kind: str = "generate"
    enabled: bool = True
    split: str = "train"
    num_problems: Optional[int] = None  # problems drawn from the split each iteration; null = all
    k: int = 1  # samples per problem
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 128
    # model: sample from the policy; gold: write the task's gold worked solution of each drawn
    # problem instead, k=1 (recipe=gold_sft, the supervised-ceiling control; no model is run)
    source: str = "model"
    # sample in this many jobs (local processes, or Slurm jobs: see `sharding`); the samples are
    # the same for every value, so changing it never recomputes a finished stage
    shards: int = 1

    @staticmethod
    def check(name: str, s, cfg) -> list[str]:
        p = Problems()
        p.need(s.source in ("model", "gold"), f"{name}.source must be model (sample from the policy) or gold "
                                              f"(the task's worked solutions) (got '{s.source}').")
        p.need(s.source != "gold" or s.k == 1, f"{name}.source=gold writes one gold solution per problem: "
                                               f"set {name}.k=1 (got {s.k}).")
        return p


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


def tuned(ctx: StageContext, key: str, default):
    """A value chosen by this iteration's `tune` stage (B-STaR), else the configured one."""
    path = ctx.inputs.get("tuned")
    return json.loads(Path(path).read_text())[key] if path else default


@register_stage("generate", inputs=lambda cfg: {"model": "policy", "problems": cfg.split, "tuned": "tuned?"}, schema=GenerateConfig)
def generate(ctx: StageContext) -> StageResult:
    c = ctx.cfg
    problems = sample_problems(ctx, ctx.inputs["problems"], c.num_problems)
    prompts = [ctx.task.prompt(p) for p in problems]
    if c.get("source", "model") == "gold":
        return _gold(ctx, problems, prompts)
    temperature = tuned(ctx, "temperature", c.temperature)
    params = SamplingParams(n=c.k, temperature=temperature, top_p=c.top_p, top_k=c.top_k,
                            max_new_tokens=c.max_new_tokens, seed=ctx.seed)
    with ctx.sampler(ctx.inputs["model"]) as sampler:
        outs, speed = run_sampler(ctx, sampler, prompts, params, "sampling")
    rows = [
        {"prompt_id": p["id"], "sample_id": j, "iteration": ctx.iteration, "difficulty": p.get("difficulty"),
         "prompt": prompt, "text": text}
        for p, prompt, texts in zip(problems, prompts, outs)
        for j, text in enumerate(texts)
    ]
    write_jsonl(ctx.out / "samples.jsonl", rows)
    return StageResult({"samples": "samples.jsonl"},
                       {"problems": len(problems), "samples": len(rows), "temperature": temperature, **speed})


def _gold(ctx: StageContext, problems: list[dict], prompts: list[str]) -> StageResult:
    """The gold-SFT control: the same problems a sampling stage would draw, with the task's gold
    worked solution as the one "sample" (the score and filter stages then keep all of them)."""
    from . import StageError

    golds = [ctx.task.gold_solution(p) for p in problems]
    missing = [p["id"] for p, g in zip(problems, golds) if not g]
    if missing:
        name = getattr(ctx.task.cfg, "name", type(ctx.task).__name__)
        raise StageError(f"{ctx.name}.source=gold needs a gold worked solution for every drawn problem, and the task "
                         f"'{name}' has none for {len(missing)} of {len(problems)} (e.g. {missing[0]}). "
                         f"Use a task whose training rows carry worked solutions (task=arithmetic does), "
                         f"or {ctx.name}.source=model.")
    rows = [{"prompt_id": p["id"], "sample_id": 0, "iteration": ctx.iteration, "difficulty": p.get("difficulty"),
             "prompt": prompt, "text": g} for p, prompt, g in zip(problems, prompts, golds)]
    write_jsonl(ctx.out / "samples.jsonl", rows)
    return StageResult({"samples": "samples.jsonl"}, {"problems": len(problems), "samples": len(rows), "gold": True})
