"""scripts/bench_sampling.py as a user runs it, at toy sizes: both sampling paths, the ratio, the
matmul peak and the MFU lines come out, each a positive number (no timing threshold: machines
here are noisy, the script's figures are for reading, not for asserting)."""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_sampling_prints_every_measure_on_the_tiny_model():
    cmd = [sys.executable, str(ROOT / "scripts" / "bench_sampling.py"), "--prompts", "8", "--k", "2",
           "--max-new-tokens", "8", "--batch-size", "8", "--baseline-prompts", "2", "--train-steps", "1",
           "--train-batch", "2", "--train-length", "16", "--peak-n", "256"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout

    def number(label: str) -> float:
        match = re.search(rf"^{re.escape(label)}\s*:\s*([0-9.]+)", out, re.M)
        assert match, f"no '{label}' line in:\n{out}"
        return float(match.group(1))

    for label in ("one-at-a-time generate", "batched backend", "speed-up", "transformers batched",
                  "fp32 matmul peak", "training"):
        assert number(label) > 0
    assert re.search(r"sampling MFU\s*:\s*[0-9.]+% batched", out) and re.search(r"training .* MFU [0-9.]+%", out)
    import importlib.util

    import torch

    if importlib.util.find_spec("vllm") is None or not torch.cuda.is_available():
        assert "vLLM backend           : skipped" in out  # said, not silently dropped
