"""Every other recipe end to end under profile=debug, checking what makes it that recipe."""
import json
import subprocess

from selfimprove.rundir import read_jsonl
from tests.helpers import CLI, metrics_by_stage


def run(recipe, root, *extra):
    p = subprocess.run([*CLI, "run", f"recipe={recipe}", "profile=debug",
                        "tracking.quiet=true", f"output_root={root}", *extra], capture_output=True, text=True,
                       timeout=900)
    assert p.returncode == 0, p.stdout + p.stderr
    return metrics_by_stage(root / recipe)


def test_rest_em_selects_checkpoint_by_validation_reward(tmp_path):
    m = run("rest_em", tmp_path)
    assert (2, "evaluate") in m and (1, "rationalize") not in m
    train = m[(1, "train")]
    # every checkpoint (save_steps=5) and the last step were validated; the best one (ties: the
    # earlier) is the one published, and its val reward is the one reported
    history = {int(k): v for k, v in json.loads((tmp_path / "rest_em/iter_01/train/val_history.json").read_text()).items()}
    assert sorted(history) == [5, 10, 12]
    best = max(history, key=lambda s: (history[s], -s))
    assert (train["selected_step"], train["val_reward"]) == (best, round(history[best], 4))
    assert train["val_reward_last"] == round(history[12], 4)
    assert m[(1, "generate")]["samples"] == 32 * 8  # k=8 per problem
    assert {"pass@1", "pass@4", "balance", "selection_precision", "distinct_correct"} <= set(m[(1, "score")])


def test_self_consistency_reports_pseudo_label_accuracy(tmp_path):
    m = run("self_consistency", tmp_path)
    assert (2, "evaluate") in m
    # recompute the monitor from the scored rows and the gold answers the scorer never saw
    gold = {p["id"]: p["answer"] for p in read_jsonl(tmp_path / "self_consistency/iter_00/prepare/train.jsonl")}
    rows = read_jsonl(tmp_path / "self_consistency/iter_01/score/scored.jsonl")
    assert not any("correct" in r or "gold" in r for r in rows)  # no gold reaches later stages
    labelled = {r["prompt_id"]: r for r in rows if r["reward"] >= 1}
    problems = {r["prompt_id"] for r in rows}
    assert m[(1, "score")]["pseudo_labelled"] == round(len(labelled) / len(problems), 4)
    right = [r["answer"] == gold[pid] for pid, r in labelled.items()]
    assert m[(1, "score")]["pseudo_label_accuracy"] == round(sum(right) / max(len(right), 1), 4)


def test_bstar_tunes_temperature_each_iteration(tmp_path):
    m = run("bstar", tmp_path)
    for it in (1, 2):
        tune, gen = m[(it, "tune")], m[(it, "generate")]
        balance = {t: tune[f"balance_T{t}"] for t in (0.7, 1.0)}  # the debug profile's two temperatures
        assert tune["temperature"] == max(balance, key=lambda t: (balance[t], -t))  # ties: the lower T
        assert gen["temperature"] == tune["temperature"]
