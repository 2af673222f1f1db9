"""scripts/results.py's aggregation on hand-made run folders (no training): the t-interval, the
gain over train_longer paired by seed, accuracy at equal compute, and the page with its curves."""
import importlib.util
import json
from pathlib import Path

import pytest

spec = importlib.util.spec_from_file_location("results", Path(__file__).parents[2] / "scripts" / "results.py")
results = importlib.util.module_from_spec(spec)
spec.loader.exec_module(results)


def fake_run(root, recipe, seed, accs, flops_per_iter):
    run = root / f"recipe={recipe},seed={seed}"
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"recipe": recipe, "status": "finished"}))
    (run / "config.yaml").write_text(f"seed: {seed}\n")
    rows = [{"iteration": i, "stage": "evaluate", "accuracy": a, "cum_flops": flops_per_iter * (i + 1),
             "cum_seconds": 10.0 * (i + 1)} for i, a in enumerate(accs)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_t_interval_matches_the_textbook_value():
    m, h = results.t_interval([0.5, 0.6, 0.7])
    assert m == pytest.approx(0.6) and h == pytest.approx(4.302653 * 0.1 / 3 ** 0.5, rel=1e-5)
    assert results.t_interval([0.4]) == (0.4, None)


def test_page_from_finished_runs(tmp_path):
    sweep = tmp_path / "results"
    for seed, (a, b) in enumerate([(0.50, 0.40), (0.60, 0.45), (0.70, 0.50)]):
        fake_run(sweep, "star", seed, [0.2, a], 100)
        fake_run(sweep, "train_longer", seed, [0.2, b], 50)
    unfinished = sweep / "recipe=bstar,seed=0"
    unfinished.mkdir()
    (unfinished / "run.json").write_text(json.dumps({"recipe": "bstar", "status": "running"}))
    runs = results.load_runs(sweep)
    assert sorted(runs) == ["star", "train_longer"] and sorted(runs["star"]) == [0, 1, 2]
    summary = results.summarize(runs)
    assert summary["star"]["final"][0] == pytest.approx(0.6)
    # paired differences 0.10, 0.15, 0.20: mean 15.0, half-width t(0.975, 2) * 0.05 / sqrt(3)
    assert results.gain_over(summary, "star") == f"+15.0 ± {100 * 4.302653 * 0.05 / 3 ** 0.5:.1f}"
    # equal compute: train_longer's total (100) is the budget; star's last evaluation within it is iteration 0
    assert results.at_budget(summary, "star", 100) == "20.0 ± 0.0"
    args = type("A", (), {"seeds": 3, "profile": "default", "jobs": 2, "output_root": "out", "sweep": "results",
                         "recipes": ""})
    images = results.plots(summary, tmp_path)
    text = results.page(summary, args, images)
    assert "| `star` | 3 | 20.0 ± 0.0 | 60.0 ± 24.8 | +15.0 ± 12.4 |" in text
    assert "`train_longer` (control)" in text and "![results_flops.png](results_flops.png)" in text
    unfinished = results.unfinished_runs(sweep)
    assert unfinished == ["recipe=bstar,seed=0: running"]
    assert "- `recipe=bstar,seed=0: running`" in results.page(summary, args, images, unfinished)
    assert all((tmp_path / name).stat().st_size > 0 for name in images)
    assert "--recipes" not in text and "subset" not in text
    args.recipes = "star,train_longer"  # a page over some recipes says so, and which
    assert "--recipes star,train_longer` on" in results.page(summary, args, images)


def test_commands_train_the_seed_models_first_then_groups_of_jobs():
    cmds = results.commands(["a", "b", "c"], seeds=2, jobs=2, root=Path("/r"), sweep="results", extra=[])
    tails = [[x for x in c if x.startswith(("recipe=", "seed=", "iterations="))] for c in cmds]
    assert tails[0] == ["recipe=star", "iterations=0", "seed=0,1"]
    assert tails[1:] == [["recipe=a,b", "seed=0"], ["recipe=c", "seed=0"], ["recipe=a,b", "seed=1"],
                         ["recipe=c", "seed=1"]]
    assert all("hydra/launcher=local_parallel" in c and "threads=1" in c for c in cmds)
