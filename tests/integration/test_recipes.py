"""Every other recipe end to end under profile=debug, checking what makes it that recipe."""
import subprocess
import sys

from selfimprove.rundir import read_jsonl


def run(recipe, root, *extra):
    p = subprocess.run([sys.executable, "-m", "selfimprove.cli", "run", f"recipe={recipe}", "profile=debug",
                        "tracking.quiet=true", f"output_root={root}", *extra], capture_output=True, text=True,
                       timeout=900)
    assert p.returncode == 0, p.stdout + p.stderr
    return {(r["iteration"], r["stage"]): r for r in read_jsonl(root / recipe / "metrics.jsonl")}


def test_rest_em_selects_checkpoint_by_validation_reward(tmp_path):
    m = run("rest_em", tmp_path)
    assert (2, "evaluate") in m and (1, "rationalize") not in m
    train = m[(1, "train")]
    assert {"val_reward", "selected_step", "val_reward_last"} <= set(train)
    assert train["selected_step"] in (5, 10, 12)  # a checkpoint step (save_steps=5) or the last step
    assert m[(1, "generate")]["samples"] == 32 * 8  # k=8 per problem
    assert {"pass@1", "pass@4", "balance", "selection_precision", "distinct_correct"} <= set(m[(1, "score")])


def test_self_consistency_reports_pseudo_label_accuracy(tmp_path):
    m = run("self_consistency", tmp_path)
    assert {"pseudo_label_accuracy", "pseudo_labelled"} <= set(m[(1, "score")])
    assert (2, "evaluate") in m


def test_bstar_tunes_temperature_each_iteration(tmp_path):
    m = run("bstar", tmp_path)
    for it in (1, 2):
        tune, gen = m[(it, "tune")], m[(it, "generate")]
        assert tune["temperature"] in (0.7, 1.0) and "balance_T0.7" in tune and "balance_T1.0" in tune
        assert gen["temperature"] == tune["temperature"]
