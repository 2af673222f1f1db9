"""Fault injection across recipes (`make test-faults`, 7.3 min on an idle 2-core machine; not run
by `python -m pytest tests`): SIGKILL a real run at chosen points, run the same command again, and
require that it completes, recomputes no finished stage, and ends with the same metrics and
bit-identical final weights as an uninterrupted run with the same seed.

CI runs one kill point per recipe (CI_POINTS, `-m "not exhaustive"`): its machine is up to three
times slower than an idle one and every tier must fit in its 90 minutes. The other points run in
`make test-faults`. STaR's mid-training kill is also in the default suite (test_star_run.py), and
SCoRe's kill inside Stage II, with and without LoRA, in test_score_recipe.py and
test_score_lora_run.py, which CI runs."""
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from selfimprove.rundir import KILL_WHILE_WRITING
from tests.integration.sigkill import comparable, resumed_from, sigkill_when_written, stage_mtimes
from tests.helpers import CLI

pytestmark = pytest.mark.faults

ARGS = ["profile=debug", "tracking.quiet=true", "cache=false", "train.steps=20", "train.save_steps=4"]

# (recipe, where to kill): a path inside the run directory whose appearance triggers the kill (kept
# to stages that run for seconds: sampling, training between checkpoints), or "writing:<path>": the
# run kills itself halfway through writing that file (deterministic, for sub-second stages)
KILL_POINTS = {
    "star": ["iter_01/.generate.partial", "iter_01/.train.partial/checkpoints/checkpoint-8/trainer_state.json",
             "writing:iter_02/.rationalize.partial/rationalized.jsonl"],
    "rest_em": ["iter_01/.generate.partial", "iter_02/.train.partial/checkpoints/checkpoint-4/trainer_state.json",
                "iter_02/.train.partial/val_history.json"],
    "self_consistency": ["iter_01/.generate.partial",
                         "iter_02/.train.partial/checkpoints/checkpoint-12/trainer_state.json",
                         "writing:iter_02/.evaluate.partial/eval.jsonl"],
    "bstar": ["writing:iter_01/.tune.partial/tuned.json",
              "iter_02/.train.partial/checkpoints/checkpoint-8/trainer_state.json"],
    # mid-sampling: after the first of several saved chunks (profile=debug + small chunks); and halfway
    # through writing a dataset and a stage's done-marker
    "star_chunked": ["iter_02/.generate.partial/resume/sampling-00001.json",
                     "writing:iter_01/.score.partial/scored.jsonl", "writing:iter_02/.filter.partial/manifest.json"],
    "vstar": ["writing:iter_01/.buffer.partial/buffer.jsonl",
              "iter_02/.verifier.partial/checkpoints/checkpoint-4/trainer_state.json"],
    "self_rewarding": ["iter_01/.judge.partial", "iter_02/.dpo.partial/checkpoints/checkpoint-5/trainer_state.json"],
    "score": ["iter_01/.score_rl.partial/checkpoints/step-000004/state.json",
              "iter_02/.score_rl.partial/checkpoints/step-000006/state.json",
              "writing:iter_02/.evaluate_turns.partial/turns.jsonl"],
    # SCoRe with LoRA: adapter checkpoints inside Stage I (adapter on the base model) and Stage II
    # (Stage I's adapter trained on)
    "score_lora": ["iter_01/.score_rl.partial/checkpoints/step-000004/state.json",
                   "iter_02/.score_rl.partial/checkpoints/step-000006/state.json"],
    # easy-to-hard: mid-labelling, mid-training, halfway through writing the mixture; with two seeded
    # models, inside the voter replica's training and in the policy's after the replica finished
    "easy_to_hard": ["iter_01/.self_label.partial", "iter_01/.train.partial/checkpoints/checkpoint-8/trainer_state.json",
                     "writing:iter_02/.mix.partial/train_data.jsonl"],
    "easy_to_hard_vote": ["iter_00/.seed_sft.partial/voters/replica-1/checkpoints/checkpoint-10/trainer_state.json",
                          "iter_02/.train.partial/voters/replica-1/checkpoints/checkpoint-8/trainer_state.json",
                          "iter_02/.train.partial/checkpoints/checkpoint-4/trainer_state.json",
                          "writing:iter_01/.self_label.partial/labels.jsonl"],
    # GRPO (TRL's GRPOTrainer): a trainer checkpoint inside each iteration's RL stage
    "grpo": ["iter_01/.grpo.partial/checkpoints/checkpoint-3/trainer_state.json",
             "iter_02/.grpo.partial/checkpoints/checkpoint-3/trainer_state.json"],
}
WRITING = "writing:"
# the one kill point per recipe that CI runs: each kind of interruption once (mid-sampling chunk,
# ReST-EM's validation history, halfway through writing a dataset, inside a verifier's, DPO's and
# GRPO's training); recipes without one here (star, score, score_lora, easy_to_hard) are
# covered in CI by the tests named in the docstring, or run in `make test-faults` only
CI_POINTS = {
    "star_chunked": "iter_02/.generate.partial/resume/sampling-00001.json",
    "rest_em": "iter_02/.train.partial/val_history.json",
    "self_consistency": "writing:iter_02/.evaluate.partial/eval.jsonl",
    "bstar": "writing:iter_01/.tune.partial/tuned.json",
    "vstar": "iter_02/.verifier.partial/checkpoints/checkpoint-4/trainer_state.json",
    "self_rewarding": "iter_02/.dpo.partial/checkpoints/checkpoint-5/trainer_state.json",
    "grpo": "iter_02/.grpo.partial/checkpoints/checkpoint-3/trainer_state.json",
}
assert all(point in KILL_POINTS[recipe] for recipe, point in CI_POINTS.items()), "a CI point that is not a kill point"
# variants: a run name -> the recipe and extra overrides it runs with
VARIANTS = {"star_chunked": ["recipe=star", "backend.chunk_prompts=8"]}
VARIANTS["score_lora"] = ["recipe=score", "score_rl.lora.enabled=true"]
# round 0's 100,000 labelled rows are sized for the real run; a debug round 0 of 20 steps needs few
VARIANTS["easy_to_hard"] = ["recipe=easy_to_hard", "task.seed_examples=2000"]
VARIANTS["easy_to_hard_vote"] = ["recipe=easy_to_hard", "seed_sft.replicas=2", "train.replicas=2",
                                 "self_label.vote_samples=2", "task.seed_examples=2000"]


def command(recipe, root, name):
    return [*CLI, "run", *VARIANTS.get(recipe, [f"recipe={recipe}"]), *ARGS,
            f"output_root={root}", f"run_name={name}"]


def last_model(run: Path) -> bytes:
    """The weights of the last stage that trained a model (train, dpo, verifier, RL stages...)."""
    models = sorted(run.glob("iter_*/*/model/model.safetensors"),
                    key=lambda p: (p.parts[-4], p.stat().st_mtime_ns))
    return models[-1].read_bytes()


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    """recipe -> its uninterrupted run, made on first use (so `-k recipe` runs only that one)."""
    root = tmp_path_factory.mktemp("reference")

    def reference(recipe):
        if not (root / recipe).exists():
            subprocess.run(command(recipe, root, recipe), check=True, capture_output=True, timeout=900)
        return root / recipe
    return reference


def cases():
    """Every (recipe, point); all but CI's are marked `exhaustive`. One xdist group per recipe
    (`--dist loadgroup`): its uninterrupted reference run is then made once, by one worker."""
    for recipe, points in KILL_POINTS.items():
        for point in points:
            marks = [pytest.mark.xdist_group(recipe)] + ([] if CI_POINTS.get(recipe) == point else [pytest.mark.exhaustive])
            yield pytest.param(recipe, point, marks=marks)


@pytest.mark.parametrize("recipe,point", cases())
def test_kill_then_resume_matches_uninterrupted(references, tmp_path, recipe, point):
    run = tmp_path / recipe
    if point.startswith(WRITING):  # the run SIGKILLs itself halfway through writing that file
        point = point[len(WRITING):]
        env = os.environ | {KILL_WHILE_WRITING: point}
        proc = subprocess.run(command(recipe, tmp_path, recipe), capture_output=True, env=env, timeout=900)
        assert proc.returncode == -signal.SIGKILL, f"the run never wrote {point}"
        target = run / point
        assert list(target.parent.glob(f".{target.name}.tmp*")) and not target.exists()  # half a file, unseen
    else:
        sigkill_when_written(command(recipe, tmp_path, recipe), run / point)
    done_before = stage_mtimes(run)

    subprocess.run(command(recipe, tmp_path, recipe), check=True, capture_output=True, timeout=900)
    after = stage_mtimes(run)
    assert all(after[k] == v for k, v in done_before.items()), "a finished stage was recomputed"
    reference = references(recipe)
    assert comparable(run) == comparable(reference)
    assert last_model(run) == last_model(reference)
    # how much of the interrupted stage was redone: a checkpoint kill resumes from that checkpoint's
    # step, a mid-sampling kill from the chunks saved before it; a kill while writing redoes the stage
    stage = point.split("/")[1].strip(".").split(".")[0]
    kept = resumed_from(run, f"{point.split('/')[0]}/{stage}")
    # (a checkpoint of the stage's own trainer; a voter replica's checkpoint resumes the replica)
    step = re.match(r"iter_\d+/\.[^/]+\.partial/checkpoints/(?:checkpoint-|step-0*)(\d+)/", point)
    if step:
        assert kept.get("resumed_from_step") == int(step.group(1)), kept
    elif "/resume/sampling-" in point:
        assert kept.get("resumed_chunks", 0) >= 1, kept
    print(f"{recipe} killed at {point}: {stage} {kept or 'stage redone'}")
