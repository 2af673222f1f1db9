"""What a Slurm user reads: sbatch refusals turned into advice, a missing sbatch, queued jobs in
`selfimprove ls`, and what a requeue cost (events.jsonl). No Slurm needed: the messages are
sbatch's own words (Slurm 22.05), checked by hand against the real local Slurm."""
import json
import os
import subprocess

from selfimprove.analysis.runs import redone_work, slurm_jobs
from selfimprove.slurm import SlurmError, explain_sbatch_refusal, require_sbatch
from tests.helpers import CLI


def test_gres_refusal_says_to_drop_gpus():
    msg = explain_sbatch_refusal("sbatch: error: Invalid generic resource (gres) specification\n")
    assert msg.startswith('sbatch refused the jobs: "Invalid generic resource (gres) specification".')
    assert "hydra.launcher.gpus_per_node=0" in msg and "hydra/launcher=slurm_cpu" in msg and "\n" not in msg


def test_partition_and_memory_refusals_name_the_setting():
    part = explain_sbatch_refusal("sbatch: error: invalid partition specified: gpu\n"
                                  "sbatch: error: Batch job submission failed: Invalid partition name specified")
    assert "invalid partition specified: gpu" in part and "hydra.launcher.partition=NAME" in part
    mem = explain_sbatch_refusal("sbatch: error: Memory specification can not be satisfied\nsbatch: error: Batch "
                                 "job submission failed: Requested node configuration is not available")
    assert "hydra.launcher.mem_gb" in mem and "\n" not in mem


def test_missing_sbatch_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    try:
        require_sbatch("hydra/launcher=slurm")
    except SlurmError as exc:
        assert "`sbatch` is not on PATH" in str(exc) and "local_parallel" in str(exc)
    else:
        raise AssertionError("no error without sbatch")


def test_slurm_launcher_without_sbatch_on_path(tmp_path):
    """The whole command, as a user runs it on a machine without Slurm."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    env = os.environ | {"PATH": str(bindir)}
    p = subprocess.run([*CLI, "run", "-m", "hydra/launcher=slurm_cpu",
                        "recipe=star", "profile=debug", "seed=0,1", f"output_root={tmp_path / 'out'}"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "`sbatch` is not on PATH" in p.stderr


def test_ls_lists_a_job_still_in_the_queue(tmp_path):
    run = tmp_path / "sweep" / "recipe=star,seed=0"
    run.mkdir(parents=True)
    (run / "slurm.json").write_text(json.dumps({"job_id": "999999_0", "overrides": ["recipe=star", "seed=0"]}))
    assert slurm_jobs(str(tmp_path))[run.resolve()]["job_id"] == "999999_0"
    p = subprocess.run([*CLI, "ls", str(tmp_path)], capture_output=True,
                       text=True, env=os.environ | {"COLUMNS": "200"}, timeout=120)
    assert p.returncode == 0, p.stderr
    row = next(line for line in p.stdout.splitlines() if "recipe=star,seed=0" in line)
    assert "star" in row.replace("recipe=star,seed=0", "") and "queued" in row and "999999_0" in row


def test_redone_work_counts_the_stage_cut_off_by_a_restart(tmp_path):
    events = [{"t": 0, "event": "run_start"}, {"t": 1, "event": "stage_start", "iteration": 0, "stage": "prepare"},
              {"t": 2, "event": "stage_done", "iteration": 0, "stage": "prepare"},
              {"t": 2, "event": "stage_start", "iteration": 0, "stage": "seed_sft"},
              {"t": 9.5, "event": "run_start"},  # requeued while seed_sft ran
              {"t": 10, "event": "stage_start", "iteration": 0, "stage": "seed_sft"},
              {"t": 12, "event": "stage_done", "iteration": 0, "stage": "seed_sft"}]
    (tmp_path / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    assert redone_work(tmp_path) == {"restarts": 1, "stages_redone": [{"iteration": 0, "stage": "seed_sft",
                                                                        "seconds": 7.5}],
                                     "seconds_redone_at_most": 7.5}
