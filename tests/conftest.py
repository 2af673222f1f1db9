"""Shared by every tier. Under pytest-xdist (`-n auto`, the README's test command) each worker is a
process of its own: one torch thread each, so that two workers on two cores do not fight over
four threads. The runs a test starts (`selfimprove run` in a subprocess) inherit OMP_NUM_THREADS=1
and so also take one thread, unless the test passes threads= itself: two runs of torch's default
two threads on two cores made OpenMP's spinning threads wait on each other (V-STaR's kill test in
the fault tier: 104 s with them, 26 s with one thread each)."""
import os

if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
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
