"""compare / ls on hand-made run directories (missing, partial and in-progress files)."""
import json
import subprocess
import sys

import pytest

from selfimprove.analysis.runs import NotARunError, find_runs, status
from selfimprove.analysis.table import comparison_rows, render
from selfimprove.rundir import RunDir


def make_run(root, name, recipe, overrides, evals, status="finished", **info):
    run = root / name
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"recipe": recipe, "overrides": overrides, "status": status, **info}))
    rows = [{"iteration": i, "stage": "evaluate", "seconds": 10.0, **m} for i, m in enumerate(evals)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run


def cli(*args):
    return subprocess.run([sys.executable, "-m", "selfimprove.cli", *args], capture_output=True, text=True)


def test_compare_rows_show_differing_overrides_and_wall_time(tmp_path):
    make_run(tmp_path, "a", "star", ["recipe=star", "seed=0"], [{"accuracy": 0.1}, {"accuracy": 0.5}])
    make_run(tmp_path, "b", "rest_em", ["recipe=rest_em", "seed=0"], [{"accuracy": 0.2, "pass@4": 0.6}])
    metrics, rows = comparison_rows(find_runs([str(tmp_path)]))
    assert metrics == ["accuracy", "pass@4"]
    assert [(r["run"], r["iteration"], r["accuracy"], r["wall_s"]) for r in rows] == [
        ("a", 0, 0.1, 10.0), ("a", 1, 0.5, 20.0), ("b", 0, 0.2, 10.0)]
    assert rows[0]["overrides"] == "recipe=star" and rows[0]["pass@4"] is None
    csv = render(rows, "csv").splitlines()
    assert csv[0].startswith("run,recipe,overrides,iteration,accuracy") and len(csv) == 4
    assert json.loads(render(rows, "json"))[2]["recipe"] == "rest_em"
    assert render(rows, "markdown").splitlines()[1].startswith("|---|")


def test_status_of_failed_interrupted_and_running_runs(tmp_path):
    failed = find_runs([str(make_run(tmp_path, "f", "star", [], [], status="failed", error="StageError: empty"))])[0]
    assert status(failed) == "failed: StageError: empty"
    dead = make_run(tmp_path, "d", "star", [], [], status="running", iteration=2, stage="train")
    assert status(find_runs([str(dead)])[0]) == "interrupted at iteration 2 stage train"  # nobody holds the lock
    with RunDir(dead).lock():
        assert status(find_runs([str(dead)])[0]) == "running at iteration 2 stage train"


def test_not_a_run_and_no_common_metrics(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(NotARunError, match="not a selfimprove run directory"):
        find_runs([str(tmp_path / "empty")])
    p = cli("compare", str(tmp_path / "empty"))
    assert p.returncode == 2 and "not a selfimprove run directory" in p.stderr
    make_run(tmp_path, "x", "star", [], [{"judge_agreement": 0.7}])
    make_run(tmp_path, "y", "star", [], [])
    p = cli("compare", str(tmp_path / "x"), str(tmp_path / "y"))
    assert p.returncode == 2 and "x: judge_agreement" in p.stderr and "y: (no evaluation yet)" in p.stderr
    assert cli("compare", str(tmp_path / "x"), "--metric", "judge_agreement").returncode == 0


def test_compare_plot_writes_a_png_and_ls_lists_runs(tmp_path):
    make_run(tmp_path, "a", "star", ["seed=0"], [{"accuracy": 0.1}, {"accuracy": 0.5}])
    make_run(tmp_path, "b", "star", ["seed=1"], [{"accuracy": 0.2}, {"accuracy": 0.4}])
    png = tmp_path / "acc.png"
    p = cli("compare", str(tmp_path / "a"), str(tmp_path / "b"), "--plot", str(png))
    assert p.returncode == 0 and "seed=1" in p.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    assert Image.open(png).size[0] > 100
    p = cli("ls", str(tmp_path))
    assert p.returncode == 0 and "finished" in p.stdout and "50.0" in p.stdout
