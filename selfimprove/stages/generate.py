"""Sample k completions per problem from the current policy (STaR's rationale generation,
ReST-EM's E-step). One batched call for all problems; rows keep prompt and sample ids."""
from __future__ import annotations

import json
from pathlib import Path
from dataclasses import dataclass
from typing import Optional

from ..backends import SamplingParams
from ..errors import Problems, StageError
from ..rundir import write_jsonl
from ..sampling import run_sampler, sample_problems
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
        p.not_test(name, s.split)
        p.need(s.source in ("model", "gold"), f"{name}.source must be model (sample from the policy) or gold "
                                              f"(the task's worked solutions) (got '{s.source}').")
        p.need(s.source != "gold" or s.k == 1, f"{name}.source=gold writes one gold solution per problem: "
                                               f"set {name}.k=1 (got {s.k}).")
        return p


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
