"""`compare` never mixes runs that differ (issue 29): each gap a careful user hit, as a run folder
written the way a run writes one (test_compare_seeds.make_run), and the message it now gets."""
import json

import pytest

from selfimprove.analysis.budget import at, budgets, curve, equal_compute
from selfimprove.analysis.groups import CompareError, group_runs
from selfimprove.analysis.paired import OWN_SEED_MODEL, paired_rows, per_problem
from selfimprove.analysis.runs import find_runs
from selfimprove.analysis.stats import paired_comparison, t_interval
from test_compare_seeds import cli, make_run  # noqa: F401  (cli: a fixture)


def test_a_recipe_default_that_changed_between_runs_splits_the_group(tmp_path, cli):
    """SCoRe's seed_sft.steps went 600 -> 1200 in the recipe: no override says so, the saved configs do."""
    for s in range(2):
        make_run(tmp_path, f"old-{s}", "score", s, [0.2, 0.3], config={"seed_sft": {"steps": 600}})
        make_run(tmp_path, f"new-{s}", "score", s + 2, [0.2, 0.5], config={"seed_sft": {"steps": 1200}})
    with pytest.raises(CompareError, match=r"saved configs differ in seed_sft\.steps \(1200: new-0, new-1; "
                                           r"600: old-0, old-1\)\. Use --group-by seed_sft\.steps"):
        group_runs(find_runs([str(tmp_path)]), "recipe")
    p = cli(str(tmp_path), "--group-by", "recipe")
    assert p.returncode == 2 and "not one experiment" in p.stderr and "--group-by seed_sft.steps" in p.stderr
    assert "Traceback" not in p.stderr
    groups = group_runs(find_runs([str(tmp_path)]), "seed_sft.steps")  # what the message says to do
    assert {k: [r.name for r in v] for k, v in groups.items()} == {"score seed_sft.steps=600": ["old-0", "old-1"],
                                                                   "score seed_sft.steps=1200": ["new-0", "new-1"]}
    assert cli(str(tmp_path), "--group-by", "seed_sft.steps").returncode == 0
    p = cli(str(tmp_path), "--group-by", "seed_sft.stpes")
    assert p.returncode == 2 and "none of these runs has 'seed_sft.stpes'" in p.stderr


def test_names_threads_and_output_places_never_split_a_group(tmp_path):
    for s in range(2):
        make_run(tmp_path, f"star-{s}", "star", s, [0.2, 0.5],
                 config={"threads": s + 1, "output_root": f"/somewhere/{s}", "tracking": {"quiet": bool(s)}})
    assert [len(v) for v in group_runs(find_runs([str(tmp_path)]), "recipe").values()] == [2]


def test_a_failed_seed_is_left_out_with_a_warning(tmp_path, cli):
    """One failed seed that evaluated only iteration 0 pulled its group's final row back to iteration 0."""
    for s in range(2):
        make_run(tmp_path, f"star-{s}", "star", s, [0.2, 0.6, 0.8])
    failed = make_run(tmp_path, "star-2", "star", 2, [0.2], status="failed")
    info = json.loads((failed / "run.json").read_text())
    (failed / "run.json").write_text(json.dumps({**info, "error": "StageError: no sample kept"}))
    p = cli(str(tmp_path), "--group-by", "recipe", "--format", "json")
    assert p.returncode == 0, p.stderr
    rows = json.loads(p.stdout)
    assert [(r["iteration"], r["seeds"]) for r in rows] == [(0, 2), (1, 2), (2, 2)]
    warnings = [line for line in p.stderr.splitlines() if "leaving out" in line]
    assert len(warnings) == 1 and "star-2 (failed: StageError: no sample kept)" in warnings[0]
    assert "--include-unfinished" in warnings[0]
    kept = json.loads(cli(str(tmp_path), "--group-by", "recipe", "--format", "json", "--include-unfinished").stdout)
    assert [r["seeds"] for r in kept] == [3, 2, 2]
    p = cli(str(failed))
    assert p.returncode == 2 and "none of these runs has finished" in p.stderr


def test_by_seed_differences_only_between_runs_from_the_same_seed_model(tmp_path, cli):
    """Self-Rewarding starts from its own M1: seed 0 of it and seed 0 of train_longer are not a pair."""
    for s in range(3):
        make_run(tmp_path, f"star-{s}", "star", s, [0.2, 0.8])
        make_run(tmp_path, f"train_longer-{s}", "train_longer", s, [0.2, 0.5])
        make_run(tmp_path, f"self_rewarding-{s}", "self_rewarding", s, [0.3, 0.4], seed_model=f"M1 of seed {s}")
    groups = group_runs(find_runs([str(tmp_path)]), "recipe")
    rows = {(r["a"], r["b"]): r for r in paired_rows(groups)}
    own = rows[("self_rewarding", "star")] if ("self_rewarding", "star") in rows else rows[("star", "self_rewarding")]
    assert own["seed_diff"] is None and own["seed_note"] == OWN_SEED_MODEL
    shared = rows.get(("star", "train_longer")) or rows[("train_longer", "star")]
    assert shared["seed_diff"] is not None and shared["seed_pairs"] == 3
    p = cli(str(tmp_path), "--group-by", "recipe", "--paired", "--format", "markdown")
    assert p.returncode == 0 and OWN_SEED_MODEL in p.stdout


def test_paired_without_gold_answers_says_so(tmp_path, cli):
    make_run(tmp_path, "a", "star", 0, [0.2, 0.5], gold=False)
    make_run(tmp_path, "b", "rest_em", 0, [0.2, 0.4], gold=False)
    with pytest.raises(CompareError, match="no `correct` field"):
        per_problem(find_runs([str(tmp_path / "a")]), None)
    p = cli(str(tmp_path), "--paired")
    assert p.returncode == 2 and "no gold answers" in p.stderr and "Leave out --paired" in p.stderr
    assert "ZeroDivisionError" not in p.stderr and "Traceback" not in p.stderr


def test_same_named_runs_in_two_folders_stay_two_units(tmp_path, cli):
    make_run(tmp_path / "x", "run", "star", 0, [0.2, 0.8])
    make_run(tmp_path / "y", "run", "star", 1, [0.2, 0.3])
    p = cli(str(tmp_path / "x" / "run"), str(tmp_path / "y" / "run"), "--paired", "--format", "json")
    assert p.returncode == 0, p.stderr
    (pair,) = json.loads(p.stdout)["paired"]
    assert (pair["a"], pair["b"]) == ("x/run", "y/run") and pair["diff"] > 0


def test_paired_comparison_refuses_lists_of_different_lengths_and_empty_ones():
    with pytest.raises(ValueError, match="got 3 values for A and 2 for B"):
        paired_comparison([1, 0, 1], [1, 0])
    with pytest.raises(ValueError, match="over no problems"):
        paired_comparison([], [])
    with pytest.raises(ValueError, match="no values"):
        t_interval([])


def test_equal_compute_reads_every_group_past_its_first_iteration(tmp_path, cli):
    """Budgets lie where every run has finished its first iteration and not yet its last: no
    group is read at its seed model. A cheap recipe (1e12 a step) and a dear one (3e12)."""
    for s in range(2):
        make_run(tmp_path, f"cheap-{s}", "star", s, [0.2, 0.4, 0.5, 0.6, 0.7], flops=1e12)
        make_run(tmp_path, f"dear-{s}", "rest_em", s, [0.2, 0.6, 0.8], flops=3e12)
    groups = group_runs(find_runs([str(tmp_path)]), "recipe")
    points, table, why = equal_compute(groups)
    assert why == "" and points[0] == pytest.approx(3e12) and points[-1] == pytest.approx(4e12)
    run = groups["star"][0]
    c = curve(run)
    assert [f for f, _ in c] == [0, 1e12, 2e12, 3e12, 4e12]
    assert at(c, 3.5e12) == pytest.approx((c[3][1] + c[4][1]) / 2)
    mean, half, n = table["star"][0]
    assert n == 2 and mean == pytest.approx(sum(r.evaluations()[3]["accuracy"] for r in groups["star"]) / 2)
    assert budgets(1.0, 100.0, 3) == pytest.approx([1.0, 10.0, 100.0])
    p = cli(str(tmp_path), "--group-by", "recipe", "--equal-compute", "--format", "markdown")
    assert p.returncode == 0 and "at 3e+12 FLOPs" in p.stdout and "at 4e+12 FLOPs" in p.stdout


def test_equal_compute_says_why_there_is_no_common_budget(tmp_path, cli):
    for s in range(2):
        make_run(tmp_path, f"cheap-{s}", "star", s, [0.2, 0.4], flops=1e12)
        make_run(tmp_path, f"dear-{s}", "rest_em", s, [0.2, 0.6], flops=3e12)
    p = cli(str(tmp_path), "--group-by", "recipe", "--equal-compute")
    assert p.returncode == 2 and "ends at 1e+12 FLOPs, before" in p.stderr and "first iteration (3e+12" in p.stderr
    p = cli(str(tmp_path), "--equal-compute")
    assert p.returncode == 2 and "add --group-by" in p.stderr


def test_a_stage_with_tokens_but_no_parameter_count_is_priced_with_the_runs_n(tmp_path):
    """GRPO's stage records its token counts but no `params`, so the pipeline wrote no `flops` for
    it: its compute is priced with compute.flops and the N the run's other stages recorded."""
    from selfimprove.compute import flops

    run = make_run(tmp_path, "grpo", "grpo", 0, [0.2, 0.4], flops=None)
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    rows[0].update(flops=1000, params=10)  # iteration 0's evaluation, as the pipeline prices it
    tokens = {"tokens_prompt": 5, "tokens_completion": 7, "tokens_trained": 11, "tokens_reference": 11}
    rows[1] = {"iteration": 1, "stage": "grpo", "seconds": 30.0, **tokens}
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (loaded,) = find_runs([str(run)])
    assert loaded.flops_through(0) == 1000
    assert loaded.flops_through(1) == 1000 + flops({**tokens, "params": 10}) == 1000 + 10 * (2 * (5 + 7 + 11) + 6 * 11)
