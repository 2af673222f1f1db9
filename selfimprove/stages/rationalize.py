"""STaR's rationalization: for problems with no correct sample, show the gold answer as a hint and
generate again; a rationale that reaches the answer is stored with the hint-free prompt."""
from __future__ import annotations

from dataclasses import dataclass

from ..backends import SamplingParams
from ..rundir import read_jsonl, write_jsonl
from ..sampling import run_sampler
from . import StageContext, StageResult, register_stage


@dataclass
class RationalizeConfig:
    """STaR: retry failed problems with the gold answer as a hint; keep the result without it."""

    kind: str = "rationalize"
    enabled: bool = True
    temperature: float = 0.0
    max_new_tokens: int = 128


@register_stage("rationalize", inputs=lambda cfg: {"model": "policy", "scored": "scored", "problems": "train"}, schema=RationalizeConfig)
def rationalize(ctx: StageContext) -> StageResult:
    scored = read_jsonl(ctx.inputs["scored"])
    problems = {p["id"]: p for p in read_jsonl(ctx.inputs["problems"])}
    solved = {r["prompt_id"] for r in scored if (r["reward"] or 0) >= 1}
    failed = list(dict.fromkeys(r["prompt_id"] for r in scored if r["prompt_id"] not in solved))
    rows = []
    if failed:
        hinted = [ctx.task.prompt(problems[i], hint=True) for i in failed]
        params = SamplingParams(n=1, temperature=ctx.cfg.temperature, max_new_tokens=ctx.cfg.max_new_tokens,
                                seed=ctx.seed)
        with ctx.sampler(ctx.inputs["model"]) as sampler:
            outs, _ = run_sampler(ctx, sampler, hinted, params, "rationalizing")
        for pid, hint_prompt, (text,) in zip(failed, hinted, outs):
            p = problems[pid]
            rows.append({"prompt_id": pid, "sample_id": 0, "iteration": ctx.iteration,
                         "difficulty": p.get("difficulty"), "prompt": ctx.task.prompt(p),  # hint removed
                         "hinted_prompt": hint_prompt, "text": text,
                         "answer": ctx.task.extract_answer(text), "reward": ctx.task.reward(text, p),
                         "source": "rationalization"})
    write_jsonl(ctx.out / "rationalized.jsonl", rows)
    ok = sum(r["reward"] >= 1 for r in rows)
    return StageResult({"rationalized": "rationalized.jsonl"},
                       {"attempted": len(rows), "rationalized": ok,
                        "success_rate": round(ok / len(rows), 4) if rows else 0.0})
