"""A recipe file of one's own declares a stage instance the shipped recipes do not have (a second
sft stage, `polish`, after STaR's `train`), and `selfimprove run` runs it like any other stage."""
import json
import os
import subprocess
from tests.helpers import CLI

RECIPE = """# STaR, then a short polishing pass of the new policy on the same filtered data
setup: [prepare, seed_sft, evaluate]
stages: [generate, score, filter, train, polish, evaluate]
iterations: 1
seed_sft: {kind: sft, init: scratch, data: seed_data, steps: 1000}
generate: {num_problems: 64, k: 1}
train: {kind: sft, init: base}
polish:
  kind: sft
  init: policy
  data: train_data
  steps: 6
  save_steps: 3
  learning_rate: 1e-4
"""


def test_a_recipe_declares_and_runs_a_second_sft_stage(tmp_path):
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "polished.yaml").write_text(RECIPE)
    env = os.environ | {"SELFIMPROVE_RECIPE_PATH": str(tmp_path / "recipes"), "OMP_NUM_THREADS": "1"}
    p = subprocess.run([*CLI, "run", "recipe=polished", "profile=debug", "threads=1",
                        "tracking.quiet=true", f"output_root={tmp_path / 'out'}"], capture_output=True, text=True,
                       env=env, timeout=900)
    assert p.returncode == 0, p.stdout + p.stderr
    run = tmp_path / "out" / "polished"
    manifest = json.loads((run / "iter_01" / "polish" / "manifest.json").read_text())
    assert manifest["kind"] == "sft" and manifest["metrics"]["steps"] == 6
    # polish trained the model `train` published, and the evaluation read polish's model
    train = json.loads((run / "iter_01" / "train" / "manifest.json").read_text())
    assert manifest["metrics"]["examples"] == train["metrics"]["examples"]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    order = [r["stage"] for r in rows if r["iteration"] == 1]
    assert order.index("train") < order.index("polish") < order.index("evaluate")
    saved = (run / "config.yaml").read_text()
    assert "polish:" in saved and "score_rl:" not in saved and "judge:" not in saved
