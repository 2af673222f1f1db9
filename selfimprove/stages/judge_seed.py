"""Self-Rewarding's seed data for M1: IFT (the worked examples `prepare` wrote) plus EFT, judge
prompts followed by a justification and `Score: N`, rendered with the configured judge template
so the model is taught exactly the prompt it is later asked. The task supplies the EFT
judgments (the built-in task derives them from gold answers with the additive rubric; a
prompts-only task reads them from its seed file). Self-instruction demonstrations (a few
problems, then a new one) teach the from-scratch model the format it later writes prompts in.
"""
from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

from ..judges import compile_score_regex, load_template, parse_score, score_problems
from ..rundir import read_jsonl, write_jsonl
from . import StageContext, StageError, StageResult, register_stage


@dataclass
class JudgeSeedConfig:
    """EFT seed data (judge prompt -> justification + `Score: N`) and self-instruction demos, added
    to the IFT seed data that trains M1."""

    kind: str = "judge_seed"
    enabled: bool = True
    eft_per_problem: int = 2  # EFT judgments per seed problem (built-in task)
    # where the built-in task's EFT problems come from: `seed` (the IFT worked examples' problems)
    # or `train` (the training pool, gold answers only: harder problems, none of them in IFT)
    eft_source: str = "seed"
    instruct_examples: int = 400  # self-instruction demonstrations (few shots -> a new prompt)
    shots: int = 4
    template: str = "${judge.template}"
    template_sha256: str = "${template_sha256:${.template}}"  # computed: do not set
    score_regex: str = "${judge.score_regex}"
    min_score: float = "${judge.min_score}"  # type: ignore[assignment]
    max_score: float = "${judge.max_score}"  # type: ignore[assignment]

    @staticmethod
    def check(name: str, s, cfg) -> list[str]:
        out = score_problems(name, s)
        if s.enabled and s.eft_source not in ("seed", "train"):
            out.append(f"{name}.eft_source must be 'seed' (the worked examples' problems) or 'train' (the training "
                       f"pool's problems) (got '{s.eft_source}').")
        return out


@register_stage("judge_seed", inputs=lambda cfg: {"seed_data": "seed_data", "seed": "seed", "pool": "train"}, schema=JudgeSeedConfig)
def judge_seed(ctx: StageContext) -> StageResult:
    c, task = ctx.cfg, ctx.task
    template = load_template(c.template)
    rx = compile_score_regex(c.score_regex)
    ift = read_jsonl(ctx.inputs["seed_data"])
    pool = read_jsonl(ctx.inputs["pool"])
    problems = read_jsonl(ctx.inputs["seed"]) if c.eft_source == "seed" else pool
    examples = task.eft_examples(problems, c.eft_per_problem, ctx.seed)
    eft = [{"prompt": template.render(task.prompt({"question": e["question"]}), e["response"]),
            "completion": e["judgment"], "prompt_id": e["problem_id"], "kind": "eft"} for e in examples]
    scores = [parse_score(e["completion"], rx, c.min_score, c.max_score) for e in eft]
    if eft and all(s is None for s in scores):  # validate() checks this at startup; a changed file lands here
        raise StageError(f"judge.score_regex '{c.score_regex}' reads no score from the {len(eft)} EFT judgments.")
    rng = random.Random(ctx.seed)
    demos = []
    if c.instruct_examples > 0 and len(pool) > c.shots:
        for j in range(c.instruct_examples):
            *shots, target = rng.sample(pool, c.shots + 1)
            demos.append({"prompt": task.instruction_prompt(shots), "completion": " " + target["question"],
                          "prompt_id": target["id"], "kind": "instruct"})
    rows = [{**r, "kind": r.get("kind", "ift")} for r in ift] + eft + demos
    write_jsonl(ctx.out / "seed_data.jsonl", rows)
    write_jsonl(ctx.out / "eft.jsonl", examples)
    hist = Counter(s for s in scores if s is not None)
    return StageResult({"seed_data": "seed_data.jsonl"},
                       {"ift_rows": len(ift), "eft_rows": len(eft), "instruct_rows": len(demos),
                        **{f"eft_score_{k:g}": hist[k] for k in sorted(hist)},
                        "eft_max_chars": max((len(r["prompt"]) + len(r["completion"]) for r in eft), default=0),
                        # gold-derived supervision in M1's data: IFT worked solutions + EFT judgments
                        # (derived from gold answers by the built-in task; a seed file's for task=prompts)
                        "gold_rows": len(ift) + len(eft),
                        "gold_problems": len({r["prompt_id"] for r in ift} | {r["prompt_id"] for r in eft}),
                        "gold_chars": sum(len(r["completion"]) for r in ift + eft)})
