"""recipe=easy_to_hard end to end under profile=debug: every filter (length, vote across samples,
vote across two seeded models), the monitors, the heatmap, and the proof that no gold label beyond
task.start_length enters training: a run whose longer gold answers are all corrupted trains on
byte-identical data and ends with bit-identical weights."""
import subprocess

import pytest

from selfimprove.rundir import read_jsonl
from tests.helpers import CLI, metrics_by_stage

# Both votes run (2 samples, 2 seeded models); near-greedy samples and a 1-of-2 model quorum keep
# the debug model's labels, so the training data holds self-labels to compare
VOTES = ["self_label.vote_samples=2", "self_label.vote_temperature=0.0001", "seed_sft.replicas=2", "train.replicas=2",
         "self_label.model_vote_threshold=0.5"]
SMALL = "task.seed_examples=2000"  # round 0's 100,000 rows are sized for the real run, not 20 debug steps


def run(root, name, *extra):
    p = subprocess.run([*CLI, "run", "recipe=easy_to_hard", "profile=debug",
                        "tracking.quiet=true", "cache=false", "threads=1", f"output_root={root}", f"run_name={name}",
                        SMALL, *VOTES, *extra], capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout + p.stderr


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2h")
    run(root, "clean")
    run(root, "poisoned", "task.corrupt_gold_above=8")
    return root


def test_rounds_report_filters_monitors_and_lengths(runs):
    m = metrics_by_stage(runs / "clean")
    for it in (1, 2):
        label = m[(it, "self_label")]
        assert label["length"] == 8 + it and label["problems"] == 32 and label["voters"] == 1
        assert {"kept_fraction", "label_accuracy_all", "dropped_length", "dropped_sample_vote", "dropped_model_vote",
                "tokens_prompt", "tokens_completion"} <= set(label)
        assert label["kept"] > 0
        assert m[(it, "train")]["replicas"] == 2
        ev = m[(it, "evaluate_lengths")]
        assert ev["trained_length"] == 8 + it and {f"accuracy_d{8 + it + d}" for d in (-1, 0, 1)} <= set(ev)
        assert "longest_at_target" in ev
    assert (runs / "clean" / "iter_02" / "train" / "voters" / "replica-1" / "model" / "config.json").exists()
    # the mixture: half this round's kept labels, the rest original data and older rounds
    mix = m[(2, "mix")]
    assert mix["rows"] == 192 and mix["rounds_mixed"] == 2


def test_no_gold_beyond_start_length_enters_training(runs):
    clean, poisoned = runs / "clean", runs / "poisoned"
    # the corruption is real: the evaluation's gold answers above 8 digits differ, those up to 8 do not
    def golds(run):
        return {(e["difficulty"], e["prompt_id"]): e["gold"]
                for e in read_jsonl(run / "iter_02" / "evaluate_lengths" / "eval.jsonl")}

    a, b = golds(clean), golds(poisoned)
    assert all((a[k] == b[k]) == (k[0] <= 8) for k in a)
    assert any(r["source"] == "round_2" for r in read_jsonl(clean / "iter_02" / "mix" / "train_data.jsonl"))
    for it in ("iter_01", "iter_02"):
        for f in ("self_label/labels.jsonl", "mix/train_data.jsonl"):
            assert (clean / it / f).read_bytes() == (poisoned / it / f).read_bytes(), f"{it}/{f} differs"
    for model in ("iter_02/train/model/model.safetensors", "iter_02/train/voters/replica-1/model/model.safetensors"):
        assert (clean / model).read_bytes() == (poisoned / model).read_bytes()


def test_rerun_does_nothing_and_heatmap(runs, tmp_path):
    assert "Nothing to do" in run(runs, "clean")
    out = tmp_path / "heat.png"
    p = subprocess.run([*CLI, "compare", str(runs / "clean"), str(runs / "poisoned"),
                        "--heatmap", str(out)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert out.stat().st_size > 1000


def test_accelerated_schedule_carries_its_length_to_the_evaluation_and_the_next_round(tmp_path):
    """self_label.schedule=accelerated: each round probes L+1, L+2, ... with gold, labels what it
    chose, and records L in its `schedule` artifact, which the evaluation window and the next round
    read. The one-minute model solves nothing, so each round takes one length, as the paper's (the
    standard schedule would take task.lengths_per_round=2)."""
    p = subprocess.run([*CLI, "run", "recipe=easy_to_hard", "profile=debug",
                        "tracking.quiet=true", "cache=false", "threads=1", f"output_root={tmp_path}", "run_name=fast", SMALL,
                        "self_label.schedule=accelerated", "self_label.accelerate_problems=8",
                        "self_label.num_problems=16", "mix.rows=64", "train.steps=4", "task.lengths_per_round=2"],
                       capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout + p.stderr
    m = metrics_by_stage(tmp_path / "fast")
    for it in (1, 2):
        label = m[(it, "self_label")]
        assert label["length"] == 8 + it and f"probe_accuracy_d{8 + it}" in label
        assert m[(it, "evaluate_lengths")]["trained_length"] == 8 + it
    import json

    assert json.loads((tmp_path / "fast/iter_02/self_label/schedule.json").read_text())["trained_length"] == 10
