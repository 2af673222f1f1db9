"""Shared by every tier. Under pytest-xdist (`-n auto`, the README's test command) each worker is a
process of its own: one torch thread each, so that two workers on two cores do not fight over
four threads (runs started through the CLI already pass threads=1)."""
import os

if os.environ.get("PYTEST_XDIST_WORKER"):
    import torch

    torch.set_num_threads(1)


def pytest_terminal_summary(terminalreporter):
    """Numbers a tier measured (`record_property("learning", ...)`), shown after the results:
    they come back from xdist workers in the test reports, where printed output does not."""
    lines = [value for outcome in ("passed", "failed") for rep in terminalreporter.stats.get(outcome, [])
             for key, value in getattr(rep, "user_properties", []) if key == "learning"]
    if lines:
        terminalreporter.write_sep("-", "measured")
        for line in lines:
            terminalreporter.write_line(line)
