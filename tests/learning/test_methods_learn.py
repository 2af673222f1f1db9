"""Slow tier (`make test-learning`, run by CI after the default suite): would a broken learner be
caught? Each test runs a method on small real budgets, with real filtering (only correct samples
are kept), and requires that it learns: STaR and SCoRe by at least 2 standard errors of their own
effect (each CPU trains its own seed model, so a gain measured on one machine is no margin for
another), DPO by a margin set from runs over several seeds (in its docstring).

SELFIMPROVE_LEARNING_SEEDS=0,1,2 runs every seed (how the margins were measured); CI runs seed 0."""
import math
import os
import subprocess
from collections import defaultdict
from dataclasses import replace

import pytest
import torch

from selfimprove.rundir import read_jsonl
from tests.helpers import CLI, metrics_by_stage

pytestmark = pytest.mark.learning
SEEDS = [int(s) for s in os.environ.get("SELFIMPROVE_LEARNING_SEEDS", "0").split(",")]
COMMON = ["tracking.quiet=true", "cache=false"]
# STaR's own first iteration (1,500 problems, 300 steps) on the default task sizes
STAR = ["recipe=star", "iterations=1", "evaluate.num_samples=0"]
# SCoRe's Stage I from a seed model trained 1200 steps (the recipe's 600 leave some seeds near 5%
# turn-2 reward at T=1, where Stage I has almost no signal: see the test's docstring)
SCORE = ["recipe=score", "iterations=1", "seed_sft.steps=1200", "score_rl.steps=150", "evaluate_turns.max_problems=100",
         "threads=1"]  # the thread count the gains were measured with (sampling is seeded, float sums are not)


def run(root, name, *args):
    p = subprocess.run([*CLI, "run", *args, *COMMON, f"output_root={root}",
                        f"run_name={name}"], capture_output=True, text=True, timeout=1800)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return metrics_by_stage(root / name)


def report(record_property, name, **numbers):
    """The measured numbers, printed at the end of the session (tests/conftest.py), also from
    pytest-xdist workers, whose output -s cannot show."""
    record_property("learning", f"{name}: " + ", ".join(f"{k}={v}" for k, v in numbers.items()))


@pytest.fixture(scope="module", params=SEEDS)
def star(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"star{request.param}")
    return root / "star", request.param, run(root, "star", *STAR, f"seed={request.param}")


@pytest.mark.xdist_group("star")  # with the DPO test: one STaR run per worker, not two
def test_star_raises_held_out_accuracy_with_real_filtering(star, record_property):
    """STaR's first iteration on the default budgets must raise held-out greedy accuracy by at
    least 2 standard errors of the paired difference, problem by problem on the same 300 test
    problems (the seed model's answer against the iteration-1 model's). The effect is checked
    against its own noise, not a margin measured on one machine: floating-point sums differ between
    CPUs, so each CPU trains its own seed model. A learner that does not move gives 0 (t = 0), a
    sign flip a negative t."""
    path, seed, m = star
    before, after = m[(0, "evaluate")]["accuracy"], m[(1, "evaluate")]["accuracy"]
    # real filtering: what is kept is exactly one rewarded sample of each solved problem
    candidates = read_jsonl(path / "iter_01/score/scored.jsonl") + read_jsonl(path / "iter_01/rationalize/rationalized.jsonl")
    rewarded = {(r["prompt_id"], r["text"]) for r in candidates if r["reward"] >= 1}
    kept = read_jsonl(path / "iter_01/filter/train_data.jsonl")
    assert {(r["prompt_id"], r["completion"]) for r in kept} <= rewarded
    assert len(kept) == len({pid for pid, _ in rewarded}) < len(candidates)
    scored = [r for r in candidates if r.get("source") != "rationalization"]
    report(record_property, "star", seed=seed, acc_before=before, acc_after=after, kept=len(kept), scored=len(scored))
    t = paired_t(path / "iter_00/evaluate/eval.jsonl", path / "iter_01/evaluate/eval.jsonl")
    report(record_property, "star_t", seed=seed, t=round(t, 2))
    assert t >= 2, f"held-out accuracy {before:.3f} -> {after:.3f}: t = {t:.2f} < 2 standard errors"


def paired_t(before_rows, after_rows) -> float:
    """Mean per-problem change in greedy correctness over its standard error (paired by problem)."""
    def greedy(path):
        return {r["prompt_id"]: float(r["correct"]) for r in read_jsonl(path) if r.get("mode") == "greedy"}
    a, b = greedy(before_rows), greedy(after_rows)
    assert a.keys() == b.keys() and a, "both evaluations must score the same problems"
    d = [b[k] - a[k] for k in a]
    mean = sum(d) / len(d)
    var = sum((x - mean) ** 2 for x in d) / (len(d) - 1)
    return mean / math.sqrt(var / len(d)) if var > 0 else (math.inf if mean > 0 else 0.0)


@pytest.mark.xdist_group("star")
def test_dpo_raises_preference_accuracy_on_its_training_pairs(star, tmp_path, record_property):
    """DPO (TRL's DPOTrainer, the dpo stage) from the seed model on its own (correct, incorrect)
    samples of the same problem: the share of training pairs where the policy gives the correct
    solution the higher log-likelihood rises. Before DPO it is ~0 (the rejected answer is the
    model's own greedy output, the chosen one a rationalization); measured after 60 steps: 1.00
    and 0.98 (seeds 0 and 1, 33 and 43 pairs, an earlier smaller STaR budget)."""
    from omegaconf import OmegaConf

    from selfimprove.config import ModelConfig
    from selfimprove.stages.dpo import DPOConfig
    from selfimprove.models import load_model, load_tokenizer
    from selfimprove.rundir import write_jsonl
    from selfimprove.stages import StageContext, get_stage
    from selfimprove.tasks.arithmetic import Arithmetic
    from selfimprove.tracking import Console
    from selfimprove.verifier import completion_logprobs
    from types import SimpleNamespace

    path, seed, _ = star
    problems = {p["id"]: p for p in read_jsonl(path / "iter_00/prepare/train.jsonl")}
    task = Arithmetic(SimpleNamespace())
    by_problem = defaultdict(lambda: ([], []))
    for r in read_jsonl(path / "iter_01/score/scored.jsonl") + read_jsonl(path / "iter_01/rationalize/rationalized.jsonl"):
        if "text" in r and r["prompt_id"] in problems:
            by_problem[r["prompt_id"]][0 if task.reward(r["text"], problems[r["prompt_id"]]) >= 1 else 1].append(r["text"])
    pairs = [{"prompt": task.prompt(problems[pid]), "chosen": good[0], "rejected": bad[0]}
             for pid, (good, bad) in by_problem.items() if good and bad and good[0] != bad[0]]
    assert len(pairs) >= 30, f"only {len(pairs)} pairs"
    write_jsonl(tmp_path / "pairs.jsonl", pairs)
    base = str(path / "iter_00/seed_sft/model")
    cfg = OmegaConf.structured(DPOConfig(steps=60, batch_size=16, learning_rate=1e-4, save_steps=1000, beta=0.1))
    ctx = StageContext(name="dpo", iteration=1, seed=seed, cfg=cfg, task=task, model_cfg=OmegaConf.structured(ModelConfig()),
                       backend_cfg=None, device="cpu", inputs={"data": str(tmp_path / "pairs.jsonl"), "init": base},
                       out=tmp_path / "out", ui=Console(quiet=True))
    ctx.out.mkdir()
    get_stage("dpo").fn(ctx)

    def accuracy(model_dir):
        tok, model = load_tokenizer(model_dir), load_model(model_dir, "float32", "cpu")
        prompts = [p["prompt"] for p in pairs]
        with torch.no_grad():
            good = completion_logprobs(model, tok, prompts, [p["chosen"] for p in pairs], 64)
            bad = completion_logprobs(model, tok, prompts, [p["rejected"] for p in pairs], 64)
        return sum(g[0] > b[0] for g, b in zip(good, bad)) / len(pairs)

    before, after = accuracy(base), accuracy(str(ctx.out / "model"))
    report(record_property, "dpo", seed=seed, pairs=len(pairs), pref_acc_before=round(before, 4), pref_acc_after=round(after, 4))
    assert after - before >= DPO_MARGIN


def fresh_turn2_episodes(run_dir, k: int = 8) -> dict:
    """Two-turn episodes of the validation problems sampled from the base model (T=1, k per
    problem, fixed seeds): the turn-2 prompts and answers, and whether each answer is right."""
    from omegaconf import OmegaConf

    from selfimprove.backends import SamplingParams, build_sampler
    from selfimprove.config import ModelConfig
    from selfimprove.tasks.arithmetic_correction import ArithmeticCorrection

    task = ArithmeticCorrection(OmegaConf.load(run_dir / "config.yaml").task)
    problems = read_jsonl(run_dir / "iter_00/prepare/val.jsonl")
    sampler = build_sampler(OmegaConf.create({"name": "hf", "batch_size": 64}), str(run_dir / "iter_00/seed_sft/model"),
                            OmegaConf.structured(ModelConfig()), "cpu")
    params = SamplingParams(n=k, temperature=1.0, max_new_tokens=96, seed=12345)
    firsts = [task.truncate(t) for texts in sampler.generate([task.prompt(p) for p in problems], params) for t in texts]
    episodes = [p for p in problems for _ in range(k)]
    prompts2 = [task.turn2(p, y1, False) for p, y1 in zip(episodes, firsts)]
    seconds = [task.truncate(texts[0]) for texts in sampler.generate(prompts2, replace(params, n=1, seed=54321))]
    sampler.close()
    return {"k": k, "prompts": prompts2, "answers": seconds,
            "right": [task.reward(y2, p) >= 1 for y2, p in zip(seconds, episodes)]}


def right_minus_wrong(model_dir, episodes: dict) -> list[float]:
    """For each problem with both right and wrong turn-2 answers: the mean log-likelihood the model
    in `model_dir` gives the right ones minus the wrong ones."""
    from statistics import mean

    from selfimprove.models import load_model, load_tokenizer
    from selfimprove.verifier import completion_logprobs

    model = load_model(str(model_dir), "float32", "cpu")
    with torch.no_grad():
        logp = [lp for lp, _ in completion_logprobs(model, load_tokenizer(str(model_dir)), episodes["prompts"],
                                                    episodes["answers"], 64)]
    k, right, out = episodes["k"], episodes["right"], []
    for start in range(0, len(logp), k):
        group = range(start, start + k)
        good, bad = [logp[i] for i in group if right[i]], [logp[i] for i in group if not right[i]]
        if good and bad:
            out.append(mean(good) - mean(bad))
    return out


@pytest.mark.parametrize("seed", SEEDS)
def test_score_stage_one_prefers_the_right_second_turns(tmp_path, seed, record_property):
    """SCoRe Stage I (REINFORCE + leave-one-out, KL-held turn 1; 150 steps) on the two-turn task,
    checked two ways, each against its own standard error (no margin measured on one machine):
    - on fresh episodes of the 100 validation problems sampled from the base model (k=8 each, not
      episodes it trained on), the policy prefers the right turn-2 answers over the wrong ones more
      than the base model did: per problem with both, (right minus wrong mean log-likelihood) under
      the policy minus under the base model; the mean must be >= 2 standard errors above 0 (a
      learner that does not move gives exactly 0, a flipped sign a negative);
    - the training episodes' turn-2 reward, first 10 steps against the last 10 (640 episodes each),
      rises by >= 2 binomial standard errors.
    Measured here (seeds 0/1/2, `SELFIMPROVE_LEARNING_SEEDS=0,1,2`): t = 10.2 / 6.7 / 8.7 (60 of 66,
    47 of 56, 48 of 54 problems up); turn-2 training reward 0.61 -> 0.75 / 0.64 -> 0.76 /
    0.69 -> 0.83 (4.8-5.5 standard errors); validation turn-2 accuracy 73 -> 82 / 73 -> 89 / 78 -> 91%.
    A model collapsed by a 5x learning rate gives t = -2.2.

    Why a 1200-step seed model: from the recipe's 600 steps the seed model's turn-2 reward at T=1
    ranged from 0.04 to 0.18 between seeds and CPUs (floating-point sums differ between machines:
    CI's seed 0 had 0.055), and Stage I then moved it by -0.02 to +0.08 (t = -0.2 on seed 1): too
    little signal for any test to pass on every machine."""
    from statistics import mean, stdev

    m = run(tmp_path, "score", *SCORE, f"seed={seed}")[(1, "score_rl")]
    path = tmp_path / "score"
    episodes = fresh_turn2_episodes(path)  # sampled once, scored under both models
    base = right_minus_wrong(path / "iter_00/seed_sft/model", episodes)
    policy = right_minus_wrong(path / "iter_01/score_rl/model", episodes)
    diffs = [b - a for a, b in zip(base, policy)]
    t = mean(diffs) / (stdev(diffs) / len(diffs) ** 0.5) if len(diffs) > 1 and stdev(diffs) > 0 else 0.0
    first, last, episodes = m["train_r2_first"], m["train_r2_last"], 10 * 64  # 10 steps x 16 problems x k=4
    se = math.sqrt((first * (1 - first) + last * (1 - last)) / episodes)
    report(record_property, "score", seed=seed, problems=len(diffs), margin_base=round(mean(base), 3),
           margin_policy=round(mean(policy), 3), t=round(t, 2), up=sum(d > 0 for d in diffs),
           r2_first=first, r2_last=last, r2_se=round(se, 4))
    assert len(diffs) >= 10, f"only {len(diffs)} validation problems with both right and wrong turn-2 answers"
    assert t >= 2, f"Stage I did not raise the preference for right turn-2 answers: t = {t:.2f}"
    assert last - first >= 2 * se, f"turn-2 training reward {first} -> {last}, standard error {se:.3f}"


# Measured margins (see each test's docstring).
DPO_MARGIN = 0.5
