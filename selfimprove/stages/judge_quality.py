"""Judge quality (the paper's Table 4 pairwise accuracy): the policy judges a fixed held-out set
of (correct, incorrect) responses with the same judge settings as the `judge` stage; a pair
counts as agreement when the correct response gets the strictly higher average score (ties
and unscored responses count as disagreement, and are reported separately).

With `own_samples` > 0 the same is measured on pairs of the policy's own sampled answers to the
held-out problems, one right and one wrong by gold (`own_*` metrics): the judge's accuracy on the
kind of pair the DPO data is made of, not only on the perturbed gold answers it was trained on."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..backends import SamplingParams
from ..errors import Problems
from ..judges import score_problems
from ..metrics import mean
from ..rundir import read_jsonl, write_jsonl
from ..sampling import run_sampler
from . import StageContext, StageResult, register_stage
from .judge import judge_all, judgment_metrics


@dataclass
class JudgeQualityConfig:
    """Pairwise accuracy of the policy-as-judge on held-out (correct, incorrect) pairs (paper's Table 4)."""

    kind: str = "judge_quality"
    enabled: bool = True
    split: str = "val"
    max_pairs: Optional[int] = None
    template: str = "${judge.template}"
    template_sha256: str = "${template_sha256:${.template}}"  # computed: do not set
    score_regex: str = "${judge.score_regex}"
    min_score: float = "${judge.min_score}"  # type: ignore[assignment]
    max_score: float = "${judge.max_score}"  # type: ignore[assignment]
    samples: int = "${judge.samples}"  # type: ignore[assignment]
    temperature: float = "${judge.temperature}"  # type: ignore[assignment]
    top_p: float = "${judge.top_p}"  # type: ignore[assignment]
    max_new_tokens: int = "${judge.max_new_tokens}"  # type: ignore[assignment]
    # The judge on the model's OWN answers: sample `own_samples` answers per held-out problem
    # (generate's sampling settings), pair the first right with the first wrong one (by gold) and
    # judge both. 0 turns it off. The fixed pairs above are gold solutions and perturbations of
    # them, the kind of text EFT trained the judge on; these are the answers DPO pairs are built from.
    own_samples: int = 0
    own_temperature: float = "${oc.select:generate.temperature,0.0}"  # type: ignore[assignment]
    own_top_p: float = "${oc.select:generate.top_p,1.0}"  # type: ignore[assignment]
    own_max_new_tokens: int = "${oc.select:generate.max_new_tokens,128}"  # type: ignore[assignment]

    @staticmethod
    def check(name: str, s, cfg) -> list[str]:
        p = Problems(score_problems(name, s))
        p.need(s.own_samples == 0 or s.own_samples >= 2,
               f"{name}.own_samples must be 0 (off) or >= 2: a right and a wrong answer need two samples "
               f"(got {s.own_samples}); e.g. {name}.own_samples=4.")
        return p


@register_stage("judge_quality", inputs=lambda cfg: {"model": "policy", "problems": cfg.split}, schema=JudgeQualityConfig)
def judge_quality(ctx: StageContext) -> StageResult:
    c, task = ctx.cfg, ctx.task
    problems = read_jsonl(ctx.inputs["problems"])[: c.max_pairs]
    # the same pairs in every iteration; a task reading them from a file (task=prompts) is capped here
    pairs = task.judge_pairs(problems, seed=0)[: c.max_pairs]
    own = c.own_samples > 0 and bool(problems) and all(p.get("answer") is not None for p in problems)
    if not pairs and not own:
        return StageResult({}, {"pairs": 0})
    items = [(task.prompt({"question": p["question"]}), resp) for p in pairs for resp in (p["good"], p["bad"])]
    with ctx.sampler(ctx.inputs["model"]) as sampler:
        results = judge_all(ctx, sampler, items, "judging held-out pairs") if items else []
        own_metrics = _own_pairs(ctx, sampler, problems) if own else {}
    if not pairs:
        return StageResult({"judge_quality": "own_pairs.jsonl"}, {"pairs": 0, **own_metrics})
    rows = []
    for i, p in enumerate(pairs):
        good, bad = results[2 * i], results[2 * i + 1]
        agree = good["score"] is not None and bad["score"] is not None and good["score"] > bad["score"]
        rows.append({**p, "good_score": good["score"], "bad_score": bad["score"], "agree": agree,
                     "good_judgments": good["judgments"], "bad_judgments": bad["judgments"]})
    write_jsonl(ctx.out / "judge_pairs.jsonl", rows)
    both = [r for r in rows if r["good_score"] is not None and r["bad_score"] is not None]
    metrics = {"pairs": len(rows), "pairwise_accuracy": round(mean([float(r["agree"]) for r in rows]), 4),
               "pair_ties": round(mean([float(r["good_score"] == r["bad_score"]) for r in both]), 4) if both else None,
               "mean_score_good": round(mean([r["good_score"] for r in both]), 4) if both else None,
               "mean_score_bad": round(mean([r["bad_score"] for r in both]), 4) if both else None,
               **{k: v for k, v in judgment_metrics(results).items() if k.startswith("unparseable")}}
    artifacts = {"judge_quality": "judge_pairs.jsonl"} | ({"own_pairs": "own_pairs.jsonl"} if own else {})
    return StageResult(artifacts, metrics | own_metrics)


def own_answer_pairs(task, problems: list[dict], prompts: list[str], answers: list[list[str]]) -> list[dict]:
    """Per problem, its first right and first wrong sampled answer by gold (in sample order);
    problems whose answers are all right or all wrong give no pair."""
    pairs = []
    for p, prompt, texts in zip(problems, prompts, answers):
        right = next((t for t in texts if task.reward(t, p) >= 1), None)
        wrong = next((t for t in texts if task.reward(t, p) < 1), None)
        if right is not None and wrong is not None:
            pairs.append({"id": p["id"], "prompt": prompt, "good": right, "bad": wrong})
    return pairs


def _own_pairs(ctx: StageContext, sampler, problems: list[dict]) -> dict:
    """Sample the policy's answers, pair the first right with the first wrong one per problem
    (problems with only right or only wrong answers give no pair), and judge both."""
    c, task = ctx.cfg, ctx.task
    prompts = [task.prompt(p) for p in problems]
    params = SamplingParams(n=c.own_samples, temperature=c.own_temperature, top_p=c.own_top_p,
                            max_new_tokens=c.own_max_new_tokens, seed=ctx.seed + 11)
    answers, _ = run_sampler(ctx, sampler, prompts, params, "own answers")
    pairs = own_answer_pairs(task, problems, prompts, answers)
    right = [task.reward(t, p) >= 1 for p, texts in zip(problems, answers) for t in texts]
    out = {"own_problems": len(problems), "own_pairs": len(pairs), "own_answer_accuracy": round(mean(right), 4)}
    if not pairs:
        write_jsonl(ctx.out / "own_pairs.jsonl", [])
        return out | {"own_pairwise_accuracy": None}
    results = judge_all(ctx, sampler, [(q["prompt"], r) for q in pairs for r in (q["good"], q["bad"])],
                        "judging own answers")
    rows = []
    for i, q in enumerate(pairs):
        good, bad = results[2 * i]["score"], results[2 * i + 1]["score"]
        rows.append({**q, "good_score": good, "bad_score": bad,
                     "agree": good is not None and bad is not None and good > bad})
    write_jsonl(ctx.out / "own_pairs.jsonl", rows)
    both = [r for r in rows if r["good_score"] is not None and r["bad_score"] is not None]
    return out | {"own_pairwise_accuracy": round(mean([float(r["agree"]) for r in rows]), 4),
                  "own_pair_ties": round(mean([float(r["good_score"] == r["bad_score"]) for r in both]), 4)
                  if both else None}
