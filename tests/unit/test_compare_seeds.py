"""compare over seeds: groups, 95% t-intervals, paired tests, number formatting at 80 columns and
in files, x axes, and the refusals (different tasks, test sets, a single seed). Run folders are
written the way a run writes them: run.json, config.yaml, metrics.jsonl, prepare's test split with
its manifest, and each iteration's eval.jsonl."""
import json
import math
import os
import random
import statistics
import subprocess
import sys

import pytest
import yaml

from selfimprove.analysis.groups import CompareError, check_comparable, group_rows, group_runs
from selfimprove.analysis.paired import paired_rows
from selfimprove.analysis.runs import find_runs
from selfimprove.analysis.stats import holm, paired_comparison, t_interval
from selfimprove.rundir import describe_files

T975_DF2 = 4.302652729911275  # Student t, 97.5% quantile, 2 degrees of freedom (tables)
TEST = [{"id": f"test-{i}", "question": f"{i}+{i}", "answer": str(2 * i)} for i in range(60)]


def make_run(root, name, recipe, seed, rates, task="arithmetic", test=TEST, overrides=(), flops=None,
             status="finished", config=None, seed_model=None, gold=True):
    """A run whose iteration i gets each test problem right with probability rates[i], with the
    files a run writes: run.json, config.yaml (`config` adds to it), metrics.jsonl, prepare's test
    split, the seed model's weights file with its manifest (`seed_model`: what the weights hold;
    by default one model per seed, shared by every recipe), each iteration's eval.jsonl
    (`gold=False`: no `correct` field, as for a task without gold answers)."""
    run = root / name
    run.mkdir(parents=True)
    ov = [f"recipe={recipe}", f"seed={seed}", *overrides]
    (run / "run.json").write_text(json.dumps({"recipe": recipe, "overrides": ov, "status": status}))
    (run / "config.yaml").write_text(yaml.safe_dump({"seed": seed, "run_name": name, "setup": ["prepare", "seed_sft"],
                                                     "task": {"name": task, "test_size": len(test)},
                                                     "evaluate": {"split": "test"}, **(config or {})}))
    prep = run / "iter_00" / "prepare"
    prep.mkdir(parents=True)
    (prep / "test.jsonl").write_text("".join(json.dumps(p) + "\n" for p in test))
    (prep / "manifest.json").write_text(json.dumps({"files": describe_files(prep)}))
    sft = run / "iter_00" / "seed_sft"
    (sft / "model").mkdir(parents=True)
    (sft / "model" / "model.safetensors").write_text(seed_model or f"seed model of seed {seed}")
    (sft / "manifest.json").write_text(json.dumps({"files": describe_files(sft)}))
    rng, rows = random.Random(f"{recipe}{seed}"), []
    for i, rate in enumerate(rates):
        correct = [rng.random() < rate for _ in test]
        ev = run / f"iter_{i:02d}" / "evaluate"
        ev.mkdir(parents=True)
        (ev / "eval.jsonl").write_text("".join(json.dumps({"prompt_id": p["id"], "mode": "greedy",
                                                           **({"correct": c} if gold else {})}) + "\n"
                                               for p, c in zip(test, correct)))
        if i:
            rows.append({"iteration": i, "stage": "train", "seconds": 30.0, **({"flops": flops} if flops else {})})
        rows.append({"iteration": i, "stage": "evaluate", "seconds": 10.0,
                     "accuracy": round(sum(correct) / len(test), 4),
                     "problems": len(test)})
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run


def sweep(tmp_path, flops=None):
    for s in range(3):
        make_run(tmp_path, f"star-{s}", "star", s, [0.2, 0.7, 0.8], flops=flops)
        make_run(tmp_path, f"rest_em-{s}", "rest_em", s, [0.2, 0.4, 0.5], flops=flops)
    return find_runs([str(tmp_path)])


class Result:
    def __init__(self, code, stdout, stderr):
        self.returncode, self.stdout, self.stderr = code, stdout, stderr


@pytest.fixture
def cli(capsys, monkeypatch):
    """`selfimprove compare ARGS` in this process (stdout captured: not a terminal, as when piped)."""
    from selfimprove.cli import main

    def run(*args, columns=None):
        if columns:
            monkeypatch.setenv("COLUMNS", str(columns))
        else:
            monkeypatch.delenv("COLUMNS", raising=False)
        capsys.readouterr()
        try:
            main(["compare", *args])
            code = 0
        except SystemExit as exc:
            code = exc.code
        out = capsys.readouterr()
        return Result(code, out.out, out.err)

    return run


def test_groups_of_seeds_get_the_mean_and_a_95_percent_t_interval(tmp_path):
    runs = sweep(tmp_path)
    groups = group_runs(runs, "recipe")
    assert {k: len(v) for k, v in groups.items()} == {"rest_em": 3, "star": 3}
    rows = group_rows(groups, ["accuracy"], ["wall_s"])
    row = next(r for r in rows if r["group"] == "star" and r["iteration"] == 2)
    accs = [r.evaluations()[2]["accuracy"] for r in groups["star"]]
    half = T975_DF2 * statistics.stdev(accs) / math.sqrt(3)
    assert row["seeds"] == 3 and row["accuracy"] == pytest.approx(statistics.mean(accs))
    assert row["accuracy_ci95"] == pytest.approx(half)
    low_high = (row["accuracy"] - half, row["accuracy"] + half)
    assert (row["accuracy_low"], row["accuracy_high"]) == pytest.approx(low_high)
    assert row["wall_s"] == 10 + 40 + 40 and "t-interval" in row["interval"]
    assert t_interval([0.5]) == (0.5, None)


def test_paired_comparison_on_the_same_problems(tmp_path):
    groups = group_runs(sweep(tmp_path), "recipe")
    (pair,) = paired_rows({"star": groups["star"], "rest_em": groups["rest_em"]})
    assert (pair["a"], pair["b"], pair["iteration_a"], pair["problems"]) == ("star", "rest_em", 2, 60)
    per = {}
    for label in ("star", "rest_em"):
        rows = [json.loads(x) for r in groups[label]
                for x in (r.path / "iter_02/evaluate/eval.jsonl").read_text().splitlines()]
        per[label] = {pid: statistics.mean(float(x["correct"]) for x in rows if x["prompt_id"] == pid) for pid in
                      {x["prompt_id"] for x in rows}}
    d = [per["star"][p] - per["rest_em"][p] for p in per["star"]]
    wins, losses = sum(x > 0 for x in d), sum(x < 0 for x in d)
    n = wins + losses
    p_exact = min(1.0, 2 * sum(math.comb(n, k) for k in range(min(wins, losses) + 1)) / 2 ** n)
    assert (pair["a_better"], pair["b_better"]) == (wins, losses) and pair["p_sign"] == pytest.approx(p_exact)
    assert pair["diff"] == pytest.approx(statistics.mean(d)) and pair["diff_low"] < pair["diff"] < pair["diff_high"]
    assert pair["p_sign"] < 0.01 and pair["diff_low"] > 0  # 0.8 vs 0.5 on 60 problems x 3 seeds
    by_seed = [r.evaluations()[2]["accuracy"] - q.evaluations()[2]["accuracy"]
               for r, q in zip(groups["star"], groups["rest_em"])]  # both sorted by seed
    assert [r.seed for r in groups["star"]] == [r.seed for r in groups["rest_em"]] == [0, 1, 2]
    assert pair["seed_diff"] == pytest.approx(statistics.mean(by_seed))
    assert pair["seed_diff_ci95"] == pytest.approx(T975_DF2 * statistics.stdev(by_seed) / math.sqrt(3))
    runs = {r.name: [r] for r in groups["star"][:2]}  # single runs: no seed-paired interval
    assert paired_rows(runs)[0]["seed_diff_ci95"] is None
    same = paired_comparison([1, 0, 1, 0], [1, 0, 1, 0])
    assert same.p_sign == 1.0 and same.diff == 0 and (same.ci_low, same.ci_high) == (0, 0)
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_table_at_80_columns_wraps_and_never_cuts_a_number(tmp_path, cli):
    sweep(tmp_path)
    p = cli(str(tmp_path), "--group-by", "recipe", "--paired", columns=80)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert max(map(len, lines)) <= 80 and "…" not in p.stdout
    row = next(r for r in group_rows(group_runs(find_runs([str(tmp_path)]), "recipe"), ["accuracy"], [])
               if r["group"] == "star" and r["iteration"] == 2)
    text = " ".join(p.stdout.split())  # a wrapped cell continues on the next line
    assert f"{100 * row['accuracy']:.1f}" in text and f"{100 * row['accuracy_ci95']:.1f}" in text
    assert "95% t-interval over seeds" in text and "n = 3 seeds" in text and "sign test" in text
    assert "e-\n" not in p.stdout  # p-values are not folded either
    assert "A-B by seed" in text and text.count("±") == 6 + 1 + 1  # 6 rows, caption, by-seed diff


def test_too_narrow_for_the_numbers_prints_one_block_per_row(tmp_path, cli):
    sweep(tmp_path)
    p = cli(str(tmp_path / "star-0"), str(tmp_path / "rest_em-1"), "--paired", columns=40)
    assert p.returncode == 0 and "…" not in p.stdout and max(map(len, p.stdout.splitlines())) <= 40
    (pair,) = paired_rows({r.name: [r] for r in find_runs([str(tmp_path / "star-0"), str(tmp_path / "rest_em-1")])})
    assert f"  A-B: {100 * pair['diff']:+.1f}" in p.stdout and f"  p sign: {pair['p_sign']:.2g}" in p.stdout


def test_ungrouped_table_moves_long_overrides_under_it_at_80_columns_and_not_in_a_file(tmp_path, cli):
    long = ["train.learning_rate=0.00031", "generate.temperature=0.7", "filter.max_per_problem=4"]
    make_run(tmp_path, "a-run-with-a-long-name", "star", 0, [0.177, 0.703], overrides=long[:1])
    make_run(tmp_path, "b", "star", 1, [0.2, 0.8], overrides=long[1:])
    narrow = cli(str(tmp_path), columns=80)
    assert narrow.returncode == 0 and "…" not in narrow.stdout and max(map(len, narrow.stdout.splitlines())) <= 80
    under = narrow.stdout.split("overrides:")[1]
    assert "b: seed=1 generate.temperature=0.7 filter.max_per_problem=4" in " ".join(under.split())
    for run in find_runs([str(tmp_path)]):
        for e in run.evaluations():
            assert f"{100 * e['accuracy']:.1f}" in narrow.stdout  # percentages, one decimal
    piped = cli(str(tmp_path))  # stdout is a pipe, no COLUMNS: as wide as the content
    assert "overrides:" not in piped.stdout and "filter.max_per_problem=4" in piped.stdout
    assert "a-run-with-a-long-name" in piped.stdout and "…" not in piped.stdout
    out = tmp_path / "table.txt"  # a real pipe to a file, from the installed command's process
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    subprocess.run(f"{sys.executable} -m selfimprove.cli compare {tmp_path} > {out}", shell=True, env=env, check=True)
    assert out.read_text() == piped.stdout


def test_csv_json_and_markdown_carry_the_intervals(tmp_path, cli):
    sweep(tmp_path)
    csv = cli(str(tmp_path), "--group-by", "recipe", "--format", "csv").stdout.splitlines()
    assert csv[0].split(",")[:8] == ["group", "seeds", "iteration", "accuracy", "accuracy_ci95", "accuracy_low",
                                     "accuracy_high", "wall_s"]
    assert csv[0].endswith("interval") and len(csv) == 7
    data = json.loads(cli(str(tmp_path), "--group-by", "recipe", "--format", "json", "--paired").stdout)
    assert data["rows"][0]["accuracy_ci95"] > 0 and data["paired"][0]["p_sign"] < 0.05
    md = cli(str(tmp_path), "--group-by", "recipe", "--format", "markdown", "--paired").stdout
    assert "| accuracy % |" in md and " ± " in md and "95% t-interval over seeds" in md
    assert "p sign" in md and "paired bootstrap" in md


def test_plot_bands_against_iterations_seconds_and_flops(tmp_path, cli):
    from selfimprove.analysis.plots import plot

    runs = sweep(tmp_path, flops=2.5e12)
    groups = group_runs(runs, "recipe")
    for x in ("iteration", "wall_s", "cum_flops"):
        png = tmp_path / f"acc-{x}.png"
        assert plot(runs, str(png), "accuracy", x, groups) == 2  # one band per group
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    p = cli(str(tmp_path), "--group-by", "recipe", "--plot", str(tmp_path / "cli.png"), "--x", "flops")
    assert p.returncode == 0 and (tmp_path / "cli.png").exists()
    rows = json.loads(cli(str(tmp_path), "--group-by", "recipe", "--format", "json").stdout)
    assert [r["cum_flops"] for r in rows if r["group"] == "star"] == [0, 2.5e12, 5e12]


def test_flops_axis_without_flops_says_what_to_use(tmp_path, cli):
    sweep(tmp_path)
    p = cli(str(tmp_path), "--plot", str(tmp_path / "x.png"), "--x", "flops")
    assert p.returncode == 2 and "none of these runs reports FLOPs" in p.stderr and "--x seconds" in p.stderr


def test_refuses_different_tasks_test_sets_and_a_single_seed(tmp_path, cli):
    make_run(tmp_path / "t", "star", "star", 0, [0.2])
    make_run(tmp_path / "t", "g", "star", 1, [0.2], task="gsm8k")
    p = cli(str(tmp_path / "t"))
    assert p.returncode == 2 and "different tasks" in p.stderr and "arithmetic: star" in p.stderr
    assert "gsm8k: g" in p.stderr and "Traceback" not in p.stderr

    make_run(tmp_path / "s", "star-0", "star", 0, [0.2])
    make_run(tmp_path / "s", "star-1", "star", 1, [0.2], test=TEST[:50])
    p = cli(str(tmp_path / "s"), "--group-by", "recipe")
    assert p.returncode == 2 and "different test sets" in p.stderr and "task.test_size" in p.stderr
    with pytest.raises(CompareError, match="star-0.*star-1|star-1.*star-0"):
        check_comparable(find_runs([str(tmp_path / "s")]))

    make_run(tmp_path / "one", "star-0", "star", 0, [0.2])
    make_run(tmp_path / "one", "rest_em-0", "rest_em", 0, [0.2])
    make_run(tmp_path / "one", "rest_em-1", "rest_em", 1, [0.2])
    p = cli(str(tmp_path / "one"), "--group-by", "recipe")
    assert p.returncode == 2 and "group 'star' has a single seed (run star-0)" in p.stderr and "seed=0,1,2" in p.stderr


def test_group_by_recipe_refuses_runs_that_differ_by_more_than_the_seed(tmp_path, cli):
    make_run(tmp_path, "a", "star", 0, [0.2], overrides=["train.steps=10"])
    make_run(tmp_path, "b", "star", 1, [0.2])
    make_run(tmp_path, "c", "star", 2, [0.2], overrides=["train.steps=10"])
    p = cli(str(tmp_path), "--group-by", "recipe")
    assert p.returncode == 2 and "differ by more than the seed" in p.stderr and "a: train.steps=10" in p.stderr
    assert "--group-by overrides" in p.stderr
    make_run(tmp_path, "d", "star", 3, [0.2])
    groups = group_runs(find_runs([str(tmp_path)]), "overrides")
    assert {k: sorted(r.name for r in v) for k, v in groups.items()} == {"star train.steps=10": ["a", "c"],
                                                                         "star": ["b", "d"]}
    make_run(tmp_path / "dup", "x", "star", 0, [0.2])
    make_run(tmp_path / "dup", "y", "star", 0, [0.3])
    with pytest.raises(CompareError, match="same seed"):
        group_runs(find_runs([str(tmp_path / "dup")]), "recipe")


def test_an_iteration_only_one_seed_reached_shows_no_interval(tmp_path, cli):
    make_run(tmp_path, "star-0", "star", 0, [0.2, 0.6, 0.7])
    make_run(tmp_path, "star-1", "star", 1, [0.2, 0.6])  # still running, say
    rows = group_rows(group_runs(find_runs([str(tmp_path)]), "recipe"), ["accuracy"], ["wall_s"])
    assert [(r["seeds"], r["accuracy_ci95"] is None) for r in rows] == [(2, False), (2, False), (1, True)]
    p = cli(str(tmp_path), "--group-by", "recipe", "--format", "markdown")
    assert p.stdout.splitlines()[4].startswith("| star | 1 | 2 | ") and "(1 seed)" in p.stdout


def test_score_runs_group_on_their_two_turn_validation_metric(tmp_path, cli):
    """SCoRe writes evaluate_turns rows (acc_t2, val_acc_t2, ...), not evaluate rows: a sweep over
    its Stage II learning rate is compared per setting over seeds on the validation metric."""
    for lr, vals in (("5e-05", (0.69, 0.12, 0.25)), ("0.0002", (0.29, 0.0, 0.02))):
        for seed, val in enumerate(vals):
            run = tmp_path / f"lr{lr}-s{seed}"
            run.mkdir()
            ov = ["recipe=score", f"score_rl.stage2_learning_rate={lr}", f"seed={seed}"]
            (run / "run.json").write_text(json.dumps({"recipe": "score", "overrides": ov, "status": "finished"}))
            (run / "config.yaml").write_text(yaml.safe_dump({"seed": seed, "task": {"name": "arithmetic_correction"}}))
            rows = [{"iteration": i, "stage": "evaluate_turns", "seconds": 5.0, "acc_t2": 0.3, "val_acc_t2": v}
                    for i, v in enumerate((0.4, val))]
            (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = cli(str(tmp_path), "--group-by", "overrides", "--metric", "val_acc_t2", "--format", "csv")
    assert out.returncode == 0, out.stderr
    final = {line.split(",")[0]: line for line in out.stdout.splitlines() if ",1," in line}
    assert len(final) == 2 and any("5e-05" in g and ",3,1,0.353" in line for g, line in final.items()), out.stdout
