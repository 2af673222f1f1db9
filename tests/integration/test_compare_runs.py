"""`selfimprove compare` on real tiny runs (profile=debug, one iteration): a recipe whose default
changed between runs is refused by name, the seed models that the stage cache shares are read
from the runs' own manifests, and A-B by seed pairs exactly the runs that share one."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from selfimprove.analysis.groups import group_runs
from selfimprove.analysis.paired import paired_rows
from selfimprove.analysis.runs import find_runs

STAR = (Path(__file__).parents[2] / "recipes" / "star.yaml").read_text()


def selfimprove(root, recipes, *args):
    env = os.environ | {"SELFIMPROVE_RECIPE_PATH": str(recipes), "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, "-m", "selfimprove.cli", *args], capture_output=True, text=True, env=env,
                       timeout=900, cwd=root)
    return p


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """star seeds 0, 1; `mine` (STaR under another name) seeds 0, 1; then mine's default
    generate.temperature changes (0.0 -> 0.7, no override says so) and seed 2 runs with it."""
    root = tmp_path_factory.mktemp("compare")
    recipes = root / "recipes"
    recipes.mkdir()
    (recipes / "mine.yaml").write_text(STAR)
    common = ["run", "profile=debug", "iterations=1", "threads=1", "tracking.quiet=true", f"output_root={root / 'out'}"]
    for recipe, seed in (("star", 0), ("star", 1), ("mine", 0), ("mine", 1)):
        p = selfimprove(root, recipes, *common, f"recipe={recipe}", f"seed={seed}", f"run_name={recipe}-{seed}")
        assert p.returncode == 0, p.stdout + p.stderr
    assert "temperature: 0.0" in STAR
    (recipes / "mine.yaml").write_text(STAR.replace("temperature: 0.0", "temperature: 0.7", 1))
    p = selfimprove(root, recipes, *common, "recipe=mine", "seed=2", "run_name=mine-2")
    assert p.returncode == 0, p.stdout + p.stderr
    return root, recipes


def test_a_changed_recipe_default_is_refused_by_name(runs):
    root, recipes = runs
    p = selfimprove(root, recipes, "compare", "out", "--group-by", "recipe")
    assert p.returncode == 2, p.stdout
    assert "generate.temperature (0.0: mine-0, mine-1; 0.7: mine-2)" in p.stderr
    assert "--group-by generate.temperature" in p.stderr and "Traceback" not in p.stderr
    p = selfimprove(root, recipes, "compare", "out", "--group-by", "generate.temperature")
    assert p.returncode == 2  # what the message says to do: now mine at 0.7 has one seed, and that is said
    assert "group 'mine generate.temperature=0.7' has a single seed (run mine-2)" in p.stderr


def test_a_minus_b_by_seed_pairs_the_runs_that_share_a_seed_model(runs):
    root, _ = runs
    all_runs = [r for r in find_runs([str(root / "out")]) if r.name != "mine-2"]
    by_name = {r.name: r for r in all_runs}
    # the stage cache trained each seed's model once; the reusing run's manifest names the same weights
    assert by_name["star-0"].seed_model == by_name["mine-0"].seed_model != by_name["star-1"].seed_model
    manifest = json.loads((root / "out" / "mine-0" / "iter_00" / "seed_sft" / "manifest.json").read_text())
    assert manifest.get("reused_from")
    (pair,) = paired_rows(group_runs(all_runs, "recipe"))
    assert pair["seed_pairs"] == 2 and pair["seed_diff"] is not None
    p = selfimprove(root, root / "recipes", "compare", "out/star-0", "out/star-1", "out/mine-0", "out/mine-1",
                    "--group-by", "recipe", "--paired", "--format", "markdown")
    assert p.returncode == 0, p.stderr
    assert "A-B by seed" in p.stdout
