"""scripts/run_report.py on a run folder written as the pipeline writes one."""
import json
import subprocess
import sys
from pathlib import Path

from selfimprove.analysis.stats import wilson_interval

ROOT = Path(__file__).resolve().parents[2]


def write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_per_iteration_wilson_intervals_and_the_paired_test_against_the_start(tmp_path):
    run = tmp_path / "star"
    before = [i < 3 for i in range(10)]  # 3 of 10 right, then 8 of 10 (5 fixed, none broken)
    after = [i < 8 for i in range(10)]
    for it, right in ((0, before), (1, after)):
        write(run / f"iter_{it:02d}/evaluate/eval.jsonl",
              [{"prompt_id": f"t{i}", "mode": "greedy", "correct": ok} for i, ok in enumerate(right)]
              + [{"prompt_id": "t0", "mode": "sample", "correct": False}])
        write(run / f"iter_{it:02d}/evaluate/val_eval.jsonl", [{"prompt_id": "v0", "mode": "greedy", "correct": it == 1}])
    write(run / "metrics.jsonl", [
        {"iteration": 0, "stage": "evaluate", "seconds": 60.0, "tokens_prompt": 900, "tokens_completion": 100},
        {"iteration": 1, "stage": "generate", "seconds": 60.0, "tokens_prompt": 900, "tokens_completion": 140},
        {"iteration": 1, "stage": "train", "seconds": 120.0, "tokens_trained": 6000}])
    out = subprocess.run([sys.executable, str(ROOT / "scripts/run_report.py"), str(run)], capture_output=True,
                         text=True, check=True).stdout
    _, lo, hi = wilson_interval(3, 10)
    assert f"| 0 | 30.0% [{100 * lo:.1f}, {100 * hi:.1f}] (n=10) | 0.0% (n=1) | - |" in out
    assert "| 1 | 80.0% " in out and "+50.0 points, 5 better / 0 worse, p = 0.062 |" in out
    assert "wall time of its stages: 4.0 min; sampling 2.0 min at 2.0 completion tokens/s (17 with" in out
    assert "training 2.0 min at 50.0 tokens/s" in out


def test_a_folder_that_is_not_a_run_is_refused(tmp_path):
    p = subprocess.run([sys.executable, str(ROOT / "scripts/run_report.py"), str(tmp_path)], capture_output=True, text=True)
    assert p.returncode == 2 and "not a run folder" in p.stderr
