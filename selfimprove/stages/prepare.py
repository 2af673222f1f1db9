"""Write the task's problem sets and the seed SFT data into the run, so every later stage reads
files and the run directory shows exactly what the model saw."""
from __future__ import annotations

from dataclasses import dataclass

from ..rundir import write_jsonl
from . import StageContext, StageResult, register_stage


@dataclass
class PrepareConfig:
    kind: str = "prepare"
    enabled: bool = True
    hinted_copies: bool = True  # also train the seed model on hinted prompts (STaR's P_hint)


@register_stage("prepare", inputs=lambda cfg: {}, schema=PrepareConfig)
def prepare(ctx: StageContext) -> StageResult:
    splits = ctx.task.splits()
    artifacts = {}
    for name, rows in splits.items():
        write_jsonl(ctx.out / f"{name}.jsonl", rows)
        artifacts[name] = f"{name}.jsonl"
    worked = [p for p in splits.get("seed", []) if p.get("solution")]
    seed_rows = [{"prompt": ctx.task.prompt(p), "completion": p["solution"], "prompt_id": p["id"]} for p in worked]
    if ctx.cfg.hinted_copies:
        # STaR's P_hint exemplars: the same worked examples with the answer shown, so that the
        # from-scratch model knows what a hint means when rationalization uses one.
        seed_rows += [{"prompt": ctx.task.prompt(p, hint=True), "completion": p["solution"], "prompt_id": p["id"]}
                      for p in worked]
    seed_rows += ctx.task.extra_seed_rows(worked)
    write_jsonl(ctx.out / "seed_data.jsonl", seed_rows)
    artifacts["seed_data"] = "seed_data.jsonl"
    # gold-derived supervision the seed model is trained on (every seed row is a worked solution or
    # built from one), so that recipes whose seed models saw different amounts can be told apart
    gold = {"gold_problems": len(worked), "gold_rows": len(seed_rows),
            "gold_chars": sum(len(r["completion"]) for r in seed_rows)}
    return StageResult(artifacts, {f"{k}_problems": len(v) for k, v in splits.items()} | {"seed_rows": len(seed_rows)}
                       | gold)
