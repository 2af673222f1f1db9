"""SCoRe end to end under profile=debug: base model, Stage I, Stage II, each evaluated on two-turn
episodes; then a run SIGKILLed inside Stage II resumes from its last RL checkpoint and ends with
the uninterrupted run's metrics and weights, bit for bit."""

import subprocess

from safetensors.torch import load_file
from tests.integration.sigkill import comparable, resumed_from, sigkill_when_written

from selfimprove.rundir import read_jsonl
from tests.helpers import CLI, metrics_by_stage

# Mostly 1-digit problems, a longer seed stage and more episodes per step than profile=debug: the
# debug model then answers a few of them, so both RL stages get non-zero advantages and really
# change the weights (a resume test needs that). No stage cache: the killed run computes everything.
ARGS = ["recipe=score", "profile=debug", "tracking.quiet=true", "cache=false", "seed_sft.steps=250", "task.seed_weights=[0.8,0.2]",
        "task.train_weights=[0.8,0.2]", "task.test_weights=[0.8,0.2]", "score_rl.problems_per_step=8", "score_rl.k=4"]
KILL_AT = "iter_02/.score_rl.partial/checkpoints/step-000004/state.json"  # Stage II, after 4 of 8 steps


def command(root, name):
    return [*CLI, "run", *ARGS, f"output_root={root}", f"run_name={name}"]


def test_score_two_stages_then_kill_and_resume_inside_stage2(tmp_path):
    subprocess.run(command(tmp_path, "ref"), check=True, capture_output=True, timeout=600)
    ref = tmp_path / "ref"
    rows = metrics_by_stage(ref)
    for it in (0, 1, 2):  # the paper's five columns for the base model, Stage I and Stage II
        m = rows[(it, "evaluate_turns")]
        assert {"acc_t1", "acc_t2", "delta", "delta_i2c", "delta_c2i"} <= set(m)
        assert abs(m["delta"] - (m["delta_i2c"] - m["delta_c2i"])) < 1e-3
        assert {"val_acc_t1", "val_acc_t2", "val_delta"} <= set(m) and m["val_problems"] == 16  # what choices read
    val_ids = {p["id"] for p in read_jsonl(ref / "iter_00/prepare/val.jsonl")}
    assert {r["prompt_id"] for r in read_jsonl(ref / "iter_02/evaluate_turns/val_turns.jsonl")} == val_ids
    assert rows[(1, "score_rl")]["score_stage"] == 1 and rows[(2, "score_rl")]["score_stage"] == 2
    assert rows[(2, "score_rl")]["episodes"] == 8 * 8 * 4 and rows[(2, "score_rl")]["episodes_per_s"] > 0
    stage1, stage2 = (load_file(ref / f"iter_0{i}/score_rl/model/model.safetensors") for i in (1, 2))
    assert any(not stage1[k].equal(stage2[k]) for k in stage1), "Stage II did not change the weights"

    run = tmp_path / "killed"
    sigkill_when_written(command(tmp_path, "killed"), run / KILL_AT)
    assert not (run / "iter_02/score_rl/manifest.json").exists()

    subprocess.run(command(tmp_path, "killed"), check=True, capture_output=True, timeout=600)
    assert resumed_from(run, "iter_02/score_rl") == {"resumed_from_step": 4}
    assert comparable(run) == comparable(ref)
    for name in ("iter_02/score_rl/model/model.safetensors",):
        assert (run / name).read_bytes() == (ref / name).read_bytes()
