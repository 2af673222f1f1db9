"""recipe=grpo end to end under profile=debug: TRL's GRPOTrainer each iteration, then the shared
evaluate stage, from the same seed model as STaR (the stage cache shares it)."""
import json
import subprocess
import sys
from pathlib import Path

from selfimprove.rundir import read_jsonl
from tests.helpers import CLI, metrics_by_stage


def run(root, *extra):
    p = subprocess.run([*CLI, "run", "profile=debug", "tracking.quiet=true",
                        "threads=1", f"output_root={root}", *extra], capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


def test_grpo_recipe_runs_and_shares_the_seed_model_with_star(tmp_path):
    out = run(tmp_path, "recipe=grpo")
    m = metrics_by_stage(tmp_path / "grpo")
    assert {(0, "seed_sft"), (0, "evaluate"), (1, "grpo"), (1, "evaluate"), (2, "grpo"), (2, "evaluate")} <= set(m)
    g = m[(2, "grpo")]
    assert g["steps"] == 6 and g["samples"] == 6 * 16  # profile=debug: 6 steps of 4 problems x k=4
    for key in ("reward_mean", "groups_all_right", "groups_all_wrong", "kl", "entropy", "completion_length",
                "tokens_prompt", "tokens_completion", "tokens_trained"):
        assert key in g, key
    assert "accuracy" in m[(2, "evaluate")] and "pass@2" in m[(2, "evaluate")]
    assert "reward_mean" in out  # the per-iteration table shows the GRPO monitors
    # STaR in the same output root reuses GRPO's seed model: the two start from the same weights
    run(tmp_path, "recipe=star", "iterations=0")
    manifest = json.loads((tmp_path / "star" / "iter_00" / "seed_sft" / "manifest.json").read_text())
    assert manifest["reused_from"].endswith("grpo/iter_00/seed_sft")
    # the FLOPs-matched comparison (scripts/compare_grpo.py): GRPO's FLOPs as its stage recorded them
    from selfimprove.analysis import matched as compare

    n = compare.params(tmp_path / "grpo")
    curve = compare.curve(tmp_path / "grpo")
    assert [a for _, a in curve] == [m[(i, "evaluate")]["accuracy"] for i in (0, 1, 2)]
    expected = n * (2 * (g["tokens_prompt"] + g["tokens_completion"]) + 6 * g["tokens_trained"]
                    + 2 * g["tokens_reference"])
    # the stage records N beside its tokens, so the pipeline prices its compute (it once went uncounted)
    assert g["params"] == n and g["flops"] == expected
    assert curve[0][0] == 0 and curve[2][0] - curve[1][0] == expected
    # the report: a row per run, then the first label against each other one on the same problems
    # (here GRPO after 2 iterations against STaR's seed model: the difference is their accuracies')
    text = compare.report_runs({"grpo": [tmp_path / "grpo"], "star": [tmp_path / "star"]}, tmp_path)
    grpo_acc, star_acc = m[(2, "evaluate")]["accuracy"], m[(0, "evaluate")]["accuracy"]
    assert f"| grpo | grpo | {100 * grpo_acc:.1f}% |" in text
    problems = sum(r["mode"] == "greedy" for r in read_jsonl(tmp_path / "grpo/iter_02/evaluate/eval.jsonl"))
    assert f"| star | {problems} | (1 common seed) | {100 * (grpo_acc - star_acc):+.1f} [" in text
