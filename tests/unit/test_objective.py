"""The sweep objective (what Optuna maximises) reads the named stage's validation metric; a name
no stage wrote is an error listing the metrics that exist."""
import json
import subprocess

import pytest

from selfimprove.cli import _objective
from tests.helpers import CLI


def run_dir(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps({"recipe": "star", "overrides": [], "status": "finished"}))
    rows = [{"iteration": 0, "stage": "evaluate", "accuracy": 0.3, "val_accuracy": 0.25},
            {"iteration": 1, "stage": "train", "loss": 0.7},
            {"iteration": 1, "stage": "evaluate", "accuracy": 0.6, "val_accuracy": 0.55}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp_path


def test_objective_is_the_last_validation_accuracy(tmp_path):
    assert _objective(run_dir(tmp_path), "evaluate.val_accuracy", required=True) == 0.55
    assert _objective(tmp_path, "train.loss", required=True) == 0.7


def test_objective_no_stage_wrote_lists_the_metrics_that_exist(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        _objective(run_dir(tmp_path), "evaluate.val_acuracy", required=True)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "objective=evaluate.val_acuracy" in err and "Metrics that exist" in err
    assert "evaluate.val_accuracy" in err and "train.loss" in err
    assert _objective(tmp_path, "evaluate.val_acuracy", required=False) is None  # no sweeper reads it


def test_objective_must_name_a_stage_and_a_metric(tmp_path):
    p = subprocess.run([*CLI, "validate", "recipe=star", "profile=debug",
                        "objective=val_accuracy", f"output_root={tmp_path}"], capture_output=True, text=True)
    assert p.returncode == 2 and "objective must be '<stage>.<metric>'" in p.stderr and "Traceback" not in p.stderr


@pytest.mark.parametrize("override, message", [
    ("objective=evaluate.accuracy", "objective=evaluate.val_accuracy"),
    ("generate.split=test", "generate reads the test split"),
])
def test_choices_and_training_data_never_read_the_test_split(tmp_path, override, message):
    p = subprocess.run([*CLI, "validate", "recipe=star", "profile=debug",
                        override, f"output_root={tmp_path}"], capture_output=True, text=True)
    assert p.returncode == 2 and message in p.stderr and "reporting only" in p.stderr
