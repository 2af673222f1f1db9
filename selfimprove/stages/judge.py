"""LLM-as-a-judge: the policy scores its own candidate responses with the judge template,
`samples` times each (paper: 3, temperature 0.7, top-p 0.9), and the parseable scores are
averaged. Unparseable judgments (no score, or one outside [min_score, max_score]) are counted
and ignored; a candidate none of whose judgments parse gets no score."""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

from ..backends import SamplingParams
from ..judges import compile_score_regex, load_template, parse_score, score_problems
from ..metrics import mean
from ..rundir import read_jsonl, write_jsonl
from ..sampling import run_sampler
from . import StageContext, StageResult, register_stage


@dataclass
class JudgeConfig:
    """LLM-as-a-judge over the policy's own candidates (Yuan et al. 2024: 3 judgments at T=0.7, p=0.9)."""

    kind: str = "judge"
    enabled: bool = True
    template: str = "scratchpad_5pt.txt"  # a shipped template (selfimprove/judges/templates/) or a path
    template_sha256: str = "${template_sha256:${.template}}"  # computed: do not set
    score_regex: str = "Score: ([0-9.]+)"  # first group = the score; the last match in a judgment counts
    min_score: float = 0.0
    max_score: float = 5.0
    samples: int = 3  # judgments per candidate, averaged over the parseable ones
    temperature: float = 0.7
    top_p: float = 0.9
    max_new_tokens: int = 64

    @staticmethod
    def check(name: str, s, cfg) -> list[str]:
        return score_problems(name, s)


def judge_all(ctx: StageContext, sampler, items: list[tuple[str, str]], label: str) -> list[dict]:
    """Judge each (prompt, response): {"judgments": [...], "scores": [...], "score": mean or None}."""
    c = ctx.cfg
    template, rx = load_template(c.template), compile_score_regex(c.score_regex)
    prompts = [template.render(p, r) for p, r in items]
    params = SamplingParams(n=c.samples, temperature=c.temperature, top_p=c.top_p, max_new_tokens=c.max_new_tokens,
                            seed=ctx.seed + 7)
    outs, _ = run_sampler(ctx, sampler, prompts, params, label)
    results = []
    for texts in outs:
        scores = [parse_score(t, rx, c.min_score, c.max_score) for t in texts]
        ok = [s for s in scores if s is not None]
        results.append({"judgments": texts, "scores": scores, "score": round(mean(ok), 4) if ok else None})
    return results


def judgment_metrics(results: list[dict]) -> dict:
    total = sum(len(r["scores"]) for r in results)
    bad = sum(s is None for r in results for s in r["scores"])
    scored = [r["score"] for r in results if r["score"] is not None]
    hist = Counter(round(s) for s in scored)
    return {"judgments": total, "unparseable": bad, "unparseable_fraction": round(bad / max(total, 1), 4),
            "mean_score": round(mean(scored), 4) if scored else None,
            **{f"score_{k}": hist[k] for k in sorted(hist)}}


def oracle_pairwise(rows: list[dict], oracle) -> dict:
    """Over every (right, wrong) pair of distinct scored candidate texts of one prompt (right and
    wrong by the task's own check, never seen by the method), how often the right one scored
    strictly higher. Nothing when the task's `oracle_correct` cannot tell (returns None)."""
    by_prompt: dict = defaultdict(dict)
    for r in rows:
        if r["score"] is not None:
            by_prompt[r["prompt_id"]].setdefault(r["text"], (oracle(r["prompt"], r["text"]), r["score"]))
    if any(ok is None for texts in by_prompt.values() for ok, _ in texts.values()):
        return {}  # the task cannot tell right from wrong
    agree = total = 0
    for texts in by_prompt.values():
        right = [s for ok, s in texts.values() if ok]
        wrong = [s for ok, s in texts.values() if not ok]
        total += len(right) * len(wrong)
        agree += sum(a > b for a in right for b in wrong)
    return {"oracle_pairs": total, "oracle_pairwise_accuracy": round(agree / total, 4) if total else None}


@register_stage("judge", inputs=lambda cfg: {"model": "policy", "samples": "samples"}, schema=JudgeConfig)
def judge(ctx: StageContext) -> StageResult:
    rows = read_jsonl(ctx.inputs["samples"])
    with ctx.sampler(ctx.inputs["model"]) as sampler:
        results = judge_all(ctx, sampler, [(r["prompt"], r["text"]) for r in rows], "judging")
    for r, res in zip(rows, results):
        r.update(res)
    write_jsonl(ctx.out / "judged.jsonl", rows)
    metrics = {"candidates": len(rows), **judgment_metrics(results),
               "unscored_candidates": sum(r["score"] is None for r in rows),
               "response_chars": round(mean([len(r["text"]) for r in rows]), 1)}
    # reporting only, where the task can check an answer itself: the judge on this iteration's own
    # candidates, right vs wrong (never used to build pairs)
    metrics |= oracle_pairwise(rows, ctx.task.oracle_correct)
    return StageResult({"judged": "judged.jsonl"}, metrics)
