"""scripts/results.py end to end at debug sizes: seed models first, then the runs through the
local parallel launcher, then the page with intervals over 2 seeds and its PNG curves."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_results_script_debug_two_seeds(tmp_path):
    out = tmp_path / "docs" / "results.md"
    cmd = [sys.executable, str(ROOT / "scripts" / "results.py"), "--profile", "debug", "--seeds", "2",
           "--recipes", "star,train_longer", "--output-root", str(tmp_path / "runs"), "--out", str(out)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    assert p.returncode == 0, p.stdout + p.stderr + (tmp_path / "runs" / "results.log").read_text()
    text = out.read_text()
    assert "| `star` | 2 |" in text and "| `train_longer` (control) | 2 |" in text
    assert "profile=debug" in text and " ± " in text and "at commit " in text
    assert "## Equal compute" in text and "A-B by seed" in text  # star and train_longer share seed models
    assert (out.parent / "results_iterations.png").stat().st_size > 0
    assert (out.parent / "results_flops.png").stat().st_size > 0
    # the seed models were trained once per seed, in the setup sweep, and reused by both recipes
    reused = list((tmp_path / "runs" / "results").glob("*/iter_00/seed_sft/manifest.json"))
    assert len(reused) == 4 and all('"reused_from": "' in m.read_text() for m in reused)
    # a second call resumes every run, finds nothing to do, and only rebuilds the page
    manifests = {m: m.stat().st_mtime_ns for m in (tmp_path / "runs").glob("results*/*/iter_*/*/manifest.json")}
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    assert again.returncode == 0, again.stdout + again.stderr
    assert manifests and all(m.stat().st_mtime_ns == t for m, t in manifests.items())
    # the page alone, from the finished run folders
    rebuilt = subprocess.run(cmd + ["--no-run"], capture_output=True, text=True, timeout=600)
    assert rebuilt.returncode == 0 and "Built from finished runs by `python scripts/results.py --no-run" in out.read_text()
