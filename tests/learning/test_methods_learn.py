"""Slow tier (`make test-learning`, run by CI after the default suite): would a broken learner be
caught? Each test runs a method on small real budgets, with real filtering (only correct samples
are kept), and requires that it learns by a margin set from runs over several seeds (the measured
gains are in each test's docstring), not by a guess.

SELFIMPROVE_LEARNING_SEEDS=0,1,2 runs every seed (how the margins were measured); CI runs seed 0."""
import os
import subprocess
import sys
from collections import defaultdict

import pytest
import torch

from selfimprove.rundir import read_jsonl

pytestmark = pytest.mark.learning
SEEDS = [int(s) for s in os.environ.get("SELFIMPROVE_LEARNING_SEEDS", "0").split(",")]
COMMON = ["tracking.quiet=true", "cache=false"]
# STaR's own first iteration (1,500 problems, 300 steps) on the default task sizes
STAR = ["recipe=star", "iterations=1", "evaluate.num_samples=0"]
SCORE = ["recipe=score", "iterations=1", "seed_sft.steps=600", "score_rl.steps=150", "evaluate_turns.max_problems=100",
         "threads=1"]  # the thread count the gains were measured with (sampling is seeded, float sums are not)


def run(root, name, *args):
    p = subprocess.run([sys.executable, "-m", "selfimprove.cli", "run", *args, *COMMON, f"output_root={root}",
                        f"run_name={name}"], capture_output=True, text=True, timeout=1800)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return {(r["iteration"], r["stage"]): r for r in read_jsonl(root / name / "metrics.jsonl")}


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
    """STaR's first iteration on the default budgets. Measured gains (held-out greedy accuracy,
    300 problems; `selfimprove run -m recipe=star seed=0,1,2 iterations=1`): seed 0 17.7 -> 70.7,
    seed 1 1.3 -> 1.7 (a seed model near 0% has almost nothing to bootstrap from), seed 2
    35.0 -> 59.7. The test requires at least half the gain measured for its seed."""
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
    assert after - before >= STAR_GAIN[seed] / 2, f"measured {STAR_GAIN[seed]} for seed {seed}"


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


@pytest.mark.parametrize("seed", SEEDS)
def test_score_stage_one_raises_the_training_reward(tmp_path, seed, record_property):
    """SCoRe Stage I (REINFORCE + leave-one-out, KL-held turn 1) on the two-turn task: the mean
    turn-2 reward of the sampled training episodes, first 10 steps against the last 10 (640
    episodes each), rises. Measured with 150 Stage-I steps (today's seed models, 200 s of Stage I
    on one thread): seed 0 0.252 -> 0.353 (+0.102, about 4 standard errors); seed 1 0.109 -> 0.123
    (+0.014, within noise), so only seed 0 has a margin. 60 steps were too few on today's seed 0
    (0.252 -> 0.259). Since sampling draws by inverse CDF (another random stream from the same
    distribution), seed 0 gives 0.178 -> 0.211 (+0.033, ~1.5 standard errors): a weak check, which
    catches a learner that does not move but not a slightly worse one. The test requires half the
    gain measured for its seed."""
    if seed not in SCORE_GAIN:
        pytest.skip(f"no gain measured for seed {seed} yet: run it and add it to SCORE_GAIN")
    m = run(tmp_path, "score", *SCORE, f"seed={seed}")[(1, "score_rl")]
    report(record_property, "score", seed=seed, r2_first=m["train_r2_first"], r2_last=m["train_r2_last"],
           r1_first=m["train_r1_first"], r1_last=m["train_r1_last"])
    assert m["train_r2_last"] - m["train_r2_first"] >= SCORE_GAIN[seed] / 2, f"measured {SCORE_GAIN[seed]}"


# Measured gains (see each test's docstring); a test requires at least half of them.
STAR_GAIN = {0: 0.530, 1: 0.004, 2: 0.247}
DPO_MARGIN = 0.5
SCORE_GAIN = {0: 0.033}
