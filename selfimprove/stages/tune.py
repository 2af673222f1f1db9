"""B-STaR's per-iteration search: sample a subset of training problems at each temperature,
score with the recipe's scorer, and keep the (temperature, threshold) with the best balance
score. Later stages of the iteration read `tuned.json` (generate: temperature; filter: threshold)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List

from ..backends import SamplingParams
from ..rundir import write_json
from ..sampling import run_sampler, sample_problems
from . import StageContext, StageResult, register_stage
from .score import SCORERS, monitors


@dataclass
class TuneConfig:
    """B-STaR: before the E-step, choose the sampling temperature (and the reward threshold, for
    non-binary rewards) that maximise the balance score on a subset of training problems."""

    kind: str = "tune"
    enabled: bool = True
    num_problems: int = 64
    k: int = 8
    temperatures: List[float] = field(default_factory=lambda: [0.5, 0.7, 0.9, 1.1])
    thresholds: List[float] = field(default_factory=list)  # empty: keep `threshold`
    # what it judges with: by default the recipe's own scorer and filter threshold
    threshold: float = "${oc.select:filter.min_reward,1.0}"  # type: ignore[assignment]
    scorer: str = "${oc.select:score.scorer,answer_match}"
    min_agreement: float = "${oc.select:score.min_agreement,0.5}"  # type: ignore[assignment]
    n_star: int = "${oc.select:score.n_star,8}"  # type: ignore[assignment]
    max_new_tokens: int = "${oc.select:generate.max_new_tokens,128}"  # type: ignore[assignment]


@register_stage("tune", inputs=lambda cfg: {"model": "policy", "problems": "train"}, schema=TuneConfig)
def tune(ctx: StageContext) -> StageResult:
    c, task = ctx.cfg, ctx.task
    problems = sample_problems(ctx, ctx.inputs["problems"], c.num_problems)
    by_id = {p["id"]: p for p in problems}
    prompts = [task.prompt(p) for p in problems]
    thresholds = list(c.thresholds) or [c.threshold]
    results, metrics = [], {}
    with ctx.sampler(ctx.inputs["model"]) as sampler:
        for t in c.temperatures:
            params = SamplingParams(n=c.k, temperature=t, max_new_tokens=c.max_new_tokens, seed=ctx.seed)
            outs, _ = run_sampler(ctx, sampler, prompts, params, f"T={t}")
            rows = [{"prompt_id": p["id"], "text": x} for p, texts in zip(problems, outs) for x in texts]
            for r, reward in zip(rows, SCORERS.get_or_explain(c.scorer)(rows, by_id, task, c)):
                r["reward"], r["correct"] = reward, task.reward(r["text"], by_id[r["prompt_id"]]) >= 1
            for tau in thresholds:
                balance = monitors(rows, tau, [], c.n_star)["balance"]
                results.append((balance, -t, tau))  # ties: the lower temperature
                metrics[f"balance_T{t}" + (f"_tau{tau}" if len(thresholds) > 1 else "")] = balance
    balance, neg_t, tau = max(results)
    write_json(ctx.out / "tuned.json", {"temperature": -neg_t, "min_reward": tau})
    return StageResult({"tuned": "tuned.json"}, {"temperature": -neg_t, "threshold": tau, "balance": balance, **metrics})
