"""Sweeps through real Hydra launchers, wandb offline tracking."""
import json
import subprocess

from selfimprove.analysis.runs import find_runs, status
from tests.helpers import CLI

QUICK = ["recipe=star", "profile=debug", "iterations=0", "tracking.quiet=true"]


def selfimprove(*args):
    return subprocess.run([*CLI, *args], capture_output=True, text=True,
                          timeout=900)


def test_basic_launcher_sweep_runs_each_combination_in_its_own_directory(tmp_path):
    p = selfimprove("run", "-m", *QUICK, "seed=0,1", f"output_root={tmp_path}", "sweep_name=seeds")
    assert p.returncode == 0, p.stderr
    runs = find_runs([str(tmp_path / "seeds")])
    assert sorted(r.path.name for r in runs) == ["iterations=0,profile=debug,recipe=star,seed=0",
                                                "iterations=0,profile=debug,recipe=star,seed=1"]
    assert all(status(r) == "finished" and r.evaluations() for r in runs)
    # compare over the sweep: the two seeds make one group with an interval; the two runs pair up
    # on the same test problems (real eval.jsonl, config.yaml and prepare manifest)
    c = selfimprove("compare", str(tmp_path / "seeds"), "--group-by", "recipe", "--format", "json")
    (row,) = json.loads(c.stdout)
    assert (row["group"], row["seeds"], row["iteration"]) == ("star", 2, 0) and row["accuracy_ci95"] is not None
    assert "val_accuracy_ci95" in row
    c = selfimprove("compare", str(tmp_path / "seeds"), "--paired", "--format", "json")
    (pair,) = json.loads(c.stdout)["paired"]
    assert pair["problems"] == runs[0].evaluations()[0]["problems"] and 0 <= pair["p_sign"] <= 1
    # the same sweep again resumes every job: nothing is recomputed
    again = selfimprove("run", "-m", *QUICK, "seed=0,1", f"output_root={tmp_path}", "sweep_name=seeds")
    assert again.returncode == 0 and again.stdout.count("Nothing to do") == 2


def test_submitit_local_launcher_sweep(tmp_path):
    p = selfimprove("run", "-m", "hydra/launcher=local_parallel", *QUICK, "seed=0,1", "threads=1",
                    f"output_root={tmp_path}")
    assert p.returncode == 0, p.stdout + p.stderr
    runs = find_runs([str(tmp_path / "sweep")])
    assert len(runs) == 2 and all(status(r) == "finished" for r in runs)
    assert sorted(r.path.name[-6:] for r in runs) == ["seed=0", "seed=1"]


def test_unknown_launcher_lists_the_available_ones(tmp_path):
    p = selfimprove("run", "-m", "hydra/launcher=nope", *QUICK, f"output_root={tmp_path}")
    assert p.returncode != 0 and "local_parallel" in p.stderr and "slurm" in p.stderr


def test_wandb_offline_run_is_resumed_with_the_same_id(tmp_path):
    from selfimprove.config import TrackingConfig
    from selfimprove.tracking import WandbTracker

    cfg = TrackingConfig(wandb_mode="offline")
    first = WandbTracker(cfg, tmp_path, {"seed": 0}, name="run")
    first.log_stage(0, "evaluate", {"accuracy": 0.5})
    run_id = first.run.id
    first.finish()
    second = WandbTracker(cfg, tmp_path, {"seed": 0}, name="run")
    assert second.run.id == run_id == json.loads((tmp_path / "wandb_id.json").read_text())["id"]
    second.finish()
    assert list((tmp_path / "wandb").glob(f"offline-run-*-{run_id}"))


def test_optuna_sweeper_maximises_the_validation_accuracy_each_run_returns(tmp_path):
    import yaml

    from selfimprove.rundir import read_jsonl

    p = selfimprove("run", "-m", "hydra/sweeper=optuna_accuracy", "hydra.sweeper.n_trials=2", *QUICK,
                    "seed_sft.learning_rate=interval(0.001,0.01)", f"output_root={tmp_path}")
    assert p.returncode == 0, p.stderr
    result = yaml.safe_load((tmp_path / "sweep" / "optimization_results.yaml").read_text())
    runs = find_runs([str(tmp_path / "sweep")])
    assert len(runs) == 2
    lr = result["best_params"]["seed_sft.learning_rate"]
    best = next(r for r in runs if r.path.name.endswith(f"seed_sft.learning_rate={lr}"))
    # the value Optuna saw is the greedy accuracy on the val split's problems, not the test split's
    val_rows = read_jsonl(best.path / "iter_00" / "evaluate" / "val_eval.jsonl")
    val_ids = {p["id"] for p in read_jsonl(best.path / "iter_00" / "prepare" / "val.jsonl")}
    assert {r["prompt_id"] for r in val_rows} == val_ids
    assert result["best_value"] == best.evaluations()[-1]["val_accuracy"] == round(
        sum(r["correct"] for r in val_rows) / len(val_rows), 4)
    test_ids = {r["prompt_id"] for r in read_jsonl(best.path / "iter_00" / "evaluate" / "eval.jsonl")}
    assert not test_ids & val_ids
