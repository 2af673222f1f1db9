"""Fault injection across recipes (`make test-faults`, ~12 min; run by CI after the default suite,
not by `python -m pytest tests`): SIGKILL a real run at chosen points, run the same command
again, and require that it completes, recomputes no finished stage, and ends with the same
metrics and bit-identical final weights as an uninterrupted run with the same seed."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from selfimprove.rundir import KILL_WHILE_WRITING, read_jsonl

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
}
WRITING = "writing:"
# variants: a run name -> the recipe and extra overrides it runs with
VARIANTS = {"star_chunked": ["recipe=star", "backend.chunk_prompts=8"]}
VARIANTS["score_lora"] = ["recipe=score", "score_rl.lora.enabled=true"]
VARIANTS["easy_to_hard_vote"] = ["recipe=easy_to_hard", "seed_sft.replicas=2", "train.replicas=2",
                                 "self_label.vote_samples=2"]


def command(recipe, root, name):
    return [sys.executable, "-m", "selfimprove.cli", "run", *VARIANTS.get(recipe, [f"recipe={recipe}"]), *ARGS,
            f"output_root={root}", f"run_name={name}"]


def comparable(run: Path):
    rows = read_jsonl(run / "metrics.jsonl")
    # timings and the resume bookkeeping (resumed_from_step, resumed_chunks) differ by design
    return [{k: v for k, v in r.items() if k != "seconds" and "per_s" not in k and not k.startswith("resumed_")
             and not k.startswith("time_share")}
            for r in rows]


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


@pytest.mark.parametrize("recipe,point", [(r, p) for r, ps in KILL_POINTS.items() for p in ps])
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
        proc = subprocess.Popen(command(recipe, tmp_path, recipe), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.time() + 600
        while not (run / point).exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.005)
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # it finished first: the assertion below says so
        proc.wait()
        assert (run / point).exists(), f"the run ended before reaching {point}"
    done_before = {str(p): p.stat().st_mtime_ns for p in run.glob("iter_*/*/manifest.json")}

    subprocess.run(command(recipe, tmp_path, recipe), check=True, capture_output=True, timeout=900)
    after = {str(p): p.stat().st_mtime_ns for p in run.glob("iter_*/*/manifest.json")}
    assert all(after[k] == v for k, v in done_before.items()), "a finished stage was recomputed"
    reference = references(recipe)
    assert comparable(run) == comparable(reference)
    assert last_model(run) == last_model(reference)
    # how much of the interrupted stage was redone: report it
    stage = point.split("/")[1].strip(".").split(".")[0]
    manifest = json.loads((run / point.split("/")[0] / stage / "manifest.json").read_text())
    m = manifest["metrics"]
    kept = (f"resumed_from_step={m['resumed_from_step']}" if "resumed_from_step" in m else
            f"resumed_chunks={m['resumed_chunks']}" if "resumed_chunks" in m else "stage redone")
    print(f"{recipe} killed at {point}: {stage} {kept}")
