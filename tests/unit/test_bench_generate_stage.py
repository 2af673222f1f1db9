"""scripts/bench_generate_stage.py as a user runs it, on the tiny model at toy sizes: the README's
STaR config composed, both sides timed, their samples compared. Checked: every line comes out with
a positive number, the prefix cache prefills fewer prompt tokens, and the samples are identical
(no timing threshold: the figures are for reading)."""
import re
import subprocess
import sys
from pathlib import Path

from selfimprove.config import TinyModelConfig
from selfimprove.models.tiny import save_tiny

ROOT = Path(__file__).resolve().parents[2]


def test_bench_generate_stage_on_the_tiny_model(tmp_path):
    model = save_tiny(TinyModelConfig(), tmp_path / "tiny", seed=0)
    cmd = [sys.executable, str(ROOT / "scripts" / "bench_generate_stage.py"), "--model", str(model), "--problems", "6",
           "--", "model.chat_template=false", "task.num_fewshot=1", "generate.max_new_tokens=8", "backend.batch_size=4",
           "generate.k=2", "generate.temperature=0.7"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "prompts: 6 x 2 (batch 4, max_new_tokens 8, T=0.7" in out, out
    prefilled = {}
    for label in ("prefix cache off", "prefix cache on"):
        match = re.search(rf"^{label}\s*:\s*([0-9.]+) completion tokens/s .* (\d+) prompt tokens prefilled", out, re.M)
        assert match and float(match.group(1)) > 0, out
        prefilled[label] = int(match.group(2))
    assert 0 < prefilled["prefix cache on"] < prefilled["prefix cache off"]
    assert float(re.search(r"^speed-up\s*:\s*([0-9.]+)x", out, re.M).group(1)) > 0
    assert "identical samples: yes" in out
