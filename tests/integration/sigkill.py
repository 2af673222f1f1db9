"""Shared by the kill-and-resume integration tests: run a CLI command and SIGKILL it the moment a
given file appears in its run directory (a trainer checkpoint inside the stage under test)."""
import os
import signal
import subprocess
import time


def sigkill_when_written(cmd: list[str], path, timeout: float = 600) -> None:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while not path.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert path.exists(), f"the run ended before it wrote {path}"
