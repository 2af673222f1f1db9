"""Shared by every tier. Under pytest-xdist (`-n 2`, the README's test command) each worker is a
process of its own: one torch thread each, so that two workers on two cores do not fight over
four threads (runs started through the CLI already pass threads=1)."""
import os

if os.environ.get("PYTEST_XDIST_WORKER"):
    import torch

    torch.set_num_threads(1)
