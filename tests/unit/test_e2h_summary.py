"""scripts/e2h_summary.py on a run folder written the way easy_to_hard writes metrics.jsonl."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def write_run(folder: Path, label_acc: list[float], acc10: list[float]) -> Path:
    folder.mkdir(parents=True)
    rows = [{"iteration": 0, "stage": "seed_sft", "seconds": 60.0},
            {"iteration": 0, "stage": "evaluate_lengths", "trained_length": 8, "longest_at_target": 8,
             "accuracy_d9": 0.9, "accuracy_d10": acc10[0], "seconds": 1.0}]
    for r, (lab, a) in enumerate(zip(label_acc, acc10[1:]), start=1):
        rows += [{"iteration": r, "stage": "self_label", "kept_fraction": 0.5, "label_accuracy": lab, "seconds": 1.0},
                 {"iteration": r, "stage": "train", "seconds": 28.0},
                 {"iteration": r, "stage": "evaluate_lengths", "trained_length": 8 + r, "longest_at_target": 9,
                  "accuracy_d10": a, "accuracy_d11": a / 2, "seconds": 1.0}]
    (folder / "metrics.jsonl").write_text("\n".join(json.dumps(x) for x in rows) + "\n")
    return folder


def test_table_has_each_runs_best_accuracy_per_length_and_label_accuracy(tmp_path):
    a = write_run(tmp_path / "filter", [0.889, 0.842], [0.14, 0.89, 0.80])
    b = write_run(tmp_path / "vote", [0.95, 0.93, 0.9], [0.14, 0.5, 0.96, 0.7])
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "e2h_summary.py"), str(a), str(b)],
                         capture_output=True, text=True, check=True).stdout
    assert "round 2: L=10 longest99=9 kept=0.5 label_acc=0.842" in out
    table = [line for line in out.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| run | best 10 | best 11 | best 12 | best 13 | best 14 |")
    # best over rounds: 89% at 10 (round 1), 44.5% -> 44% at 11 (round 1, 0.89 / 2); 12+ never evaluated
    assert table[1] == "| filter | 89% | 44% | - | - | - | - | - | 88.9 / 84.2 / - / -% | 2.0 min |", table[1]
    assert table[2].startswith("| vote | 96% | 48% | - |") and "95.0 / 93.0 / 90.0 / -%" in table[2]


def test_paired_differences_by_seed_with_an_interval(tmp_path):
    a = [write_run(tmp_path / f"a{i}", [0.8, 0.6], [0.1, acc, 0.5]) for i, acc in enumerate([0.6, 0.7, 0.8])]
    b = [write_run(tmp_path / f"b{i}", [0.9, 0.7], [0.1, acc, 0.5]) for i, acc in enumerate([0.7, 0.9, 0.9])]
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "e2h_summary.py"), "--paired",
                          ",".join(map(str, a)), ",".join(map(str, b))], capture_output=True, text=True, check=True).stdout
    # differences at 10 digits: +10, +20, +10 -> mean 13.3, sd 5.77, t(0.975, 2) = 4.303 -> +-14.3
    assert "| best 10 digits | 70.0 | 83.3 | +13.3 ± 14.3 |" in out, out
    assert "| kept labels right, round 1 | 80.0 | 90.0 | +10.0 ± 0.0 |" in out
    one = subprocess.run([sys.executable, str(ROOT / "scripts" / "e2h_summary.py"), "--paired", str(a[0]), str(b[0])],
                         capture_output=True, text=True)
    assert one.returncode != 0 and "needs the same number (>= 2) of runs" in one.stderr
