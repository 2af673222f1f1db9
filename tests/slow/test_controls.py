"""The two control recipes end to end under profile=debug, next to STaR in one output root:
they start from STaR's seed model (shared through the stage cache), `gold_sft` trains on gold
solutions of the problems STaR draws, and `train_longer` adds STaR's train steps on the seed data."""
import json
import subprocess

from selfimprove.rundir import read_jsonl
from tests.helpers import CLI, metrics_by_stage


def run(recipe, root):
    p = subprocess.run([*CLI, "run", f"recipe={recipe}", "profile=debug",
                        "tracking.quiet=true", "threads=1", f"output_root={root}"], capture_output=True, text=True,
                       timeout=900)
    assert p.returncode == 0, p.stdout + p.stderr
    return metrics_by_stage(root / recipe)


def test_controls_share_star_seed_model_and_match_its_budget(tmp_path):
    star = run("star", tmp_path)
    gold = run("gold_sft", tmp_path)
    longer = run("train_longer", tmp_path)
    for recipe in ("gold_sft", "train_longer"):  # the same seed model: reused, not retrained
        manifest = json.loads((tmp_path / recipe / "iter_00" / "seed_sft" / "manifest.json").read_text())
        assert manifest["reused_from"]  # an identical stage (same fingerprint) of another run in the root
    for it in (1, 2):
        # gold_sft: STaR's problems, each with its gold solution, all kept and trained on
        drawn = {r["prompt_id"] for r in read_jsonl(tmp_path / "star" / f"iter_{it:02d}" / "generate" / "samples.jsonl")}
        golds = read_jsonl(tmp_path / "gold_sft" / f"iter_{it:02d}" / "generate" / "samples.jsonl")
        assert {r["prompt_id"] for r in golds} == drawn
        assert gold[(it, "score")]["mean_reward"] == 1.0 and gold[(it, "train")]["examples"] == len(drawn)
        assert gold[(it, "generate")].get("tokens_completion") is None  # nothing was sampled
        # train_longer: as many extra steps as STaR trained in that iteration, on the seed data
        assert longer[(it, "train")]["steps"] == star[(it, "train")]["steps"]
        assert longer[(it, "train")]["examples"] == star[(0, "prepare")]["seed_rows"]
        assert (it, "generate") not in longer
        for m in (gold, longer):
            assert "accuracy" in m[(it, "evaluate")] and m[(it, "train")]["tokens_trained"] > 0
            assert m[(it, "evaluate")]["cum_flops"] > m[(it, "train")]["cum_flops"] > m[(0, "evaluate")]["cum_flops"]
