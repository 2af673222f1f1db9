"""Sample k completions per problem from the current policy (STaR's rationale generation,
ReST-EM's E-step). One batched call for all problems; rows keep prompt and sample ids."""
from __future__ import annotations

import json
import random
import re
import time
from dataclasses import replace
from pathlib import Path

from .. import compute
from ..backends import SamplingParams
from ..rundir import read_jsonl, write_json, write_jsonl
from . import StageContext, StageResult, register_stage


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
    chunk's token counts, which a resumed stage adds back to its compute accounting."""
    size = max(1, int(getattr(ctx.backend_cfg, "chunk_prompts", 0) or len(prompts) or 1))
    tag = re.sub(r"[^\w.=-]+", "_", label)
    outs: list[list[str]] = []
    n = chars = reused = 0
    start = time.time()
    with ctx.ui.progress(f"{ctx.name}: {label}", total=len(prompts)) as advance:
        for c, lo in enumerate(range(0, len(prompts), size)):
            saved = ctx.resume_dir / f"{tag}-{c:05d}.json"
            if saved.exists():
                kept = json.loads(saved.read_text())
                chunk = kept["texts"]
                compute.add(**kept["compute"])
                advance(len(chunk))
                reused += 1
            else:
                with compute.metering() as meter:
                    got = sampler.generate(prompts[lo:lo + size], replace(params, seed=params.seed + 1_000_033 * c),
                                           progress=advance)
                chunk = [[ctx.task.truncate(t) for t in o] for o in got]
                write_json(saved, {"texts": chunk, "compute": meter.counts})
                n += sum(len(o) for o in chunk)
                chars += sum(len(t) for o in chunk for t in o)
            outs.extend(chunk)
    seconds = max(time.time() - start, 1e-9)
    speed = {"samples_per_s": round(n / seconds, 1), "chars_per_s": round(chars / seconds, 1)}
    return outs, speed | ({"resumed_chunks": reused} if reused else {})


def tuned(ctx: StageContext, key: str, default):
    """A value chosen by this iteration's `tune` stage (B-STaR), else the configured one."""
    path = ctx.inputs.get("tuned")
    return json.loads(Path(path).read_text())[key] if path else default


@register_stage("generate", inputs=lambda cfg: {"model": "policy", "problems": cfg.split, "tuned": "tuned?"})
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
