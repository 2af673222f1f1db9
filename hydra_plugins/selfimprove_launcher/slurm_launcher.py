"""(Hydra loads launchers only from the `hydra_plugins` package, hence this folder.)

The Slurm launcher of `hydra/launcher=slurm` and `slurm_cpu`: hydra-submitit-launcher's, with
what a user needs around it.

- No `sbatch` on PATH, or sbatch refusing the jobs (unknown partition, GPUs the cluster lacks,
  more memory than a node has): one paragraph with Slurm's own words and the setting to change,
  instead of submitit's FailedJobError traceback.
- Each job's run folder gets `slurm.json` (its job id) at submission, so `selfimprove ls` shows a
  job that is still queued, with the state squeue reports.
- A job that fails says so in one line with its log, and the others are still waited for.
Preemption and time limits are submitit's: Slurm signals the job (USR2) before it is stopped,
submitit requeues it (`max_num_timeout` times for a time limit, always for a preemption), and the
requeued job resumes its own run folder.
"""
from __future__ import annotations

import contextlib
import io
import json
import sys
import time
from pathlib import Path
from typing import Sequence

from hydra.core.utils import JobReturn, filter_overrides
from omegaconf import OmegaConf

from selfimprove.slurm import SlurmError, explain_sbatch_refusal, require_sbatch, wait_for_jobs

try:  # the optional extra selfimprove[slurm]; Hydra imports every plugin module at startup
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher as _SubmititSlurmLauncher
except ImportError:  # pragma: no cover
    _SubmititSlurmLauncher = object

SLURM_FILE = "slurm.json"


def _fail(message: str) -> None:
    print(f"selfimprove: error: {message}", file=sys.stderr)
    sys.exit(2)


class SlurmLauncher(_SubmititSlurmLauncher):
    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        import submitit
        from hydra.core.singleton import Singleton

        try:
            require_sbatch("hydra/launcher=slurm")
        except SlurmError as exc:
            _fail(str(exc))
        params = dict(self.params)
        executor = submitit.AutoExecutor(folder=params.pop("submitit_folder"), cluster="slurm",
                                         slurm_max_num_timeout=params.pop("max_num_timeout"))
        generic = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{k if k in generic else f"slurm_{k}": v for k, v in params.items()})
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        args = [(list(o), "hydra.sweep.dir", initial_job_idx + i, f"job_id_for_{initial_job_idx + i}",
                 Singleton.get_state()) for i, o in enumerate(job_overrides)]
        said = io.StringIO()
        try:
            with contextlib.redirect_stderr(said):  # submitit echoes sbatch's stderr; we say it once below
                jobs = executor.map_array(self, *zip(*args))
        except submitit.core.utils.FailedJobError as exc:
            _fail(explain_sbatch_refusal(str(exc)))
        sys.stderr.write(said.getvalue())
        run_dirs = [self._run_dir(o) for o in job_overrides]
        for job, run_dir, overrides in zip(jobs, run_dirs, job_overrides):
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / SLURM_FILE).write_text(json.dumps(
                {"job_id": job.job_id, "submitted_at": time.time(), "overrides": list(overrides),
                 "submitit_folder": str(job.paths.folder)}))
            print(f"slurm job {job.job_id}: {' '.join(filter_overrides(overrides))} -> {run_dir}", flush=True)
        ended = wait_for_jobs(jobs)
        results, failed = [], []
        for job, run_dir in zip(jobs, run_dirs):
            try:
                if not job.paths.result_pickle.exists():
                    raise RuntimeError(f"the job ended without a result (Slurm's last state: "
                                       f"{ended.get(job.job_id, 'gone')}; cancelled, killed or out of time)")
                results.append(job.results()[0])
            except Exception as exc:  # noqa: BLE001  (a failed job: the others are still waited for)
                lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
                # our own one-line error if the run stopped with one, else the exception's last line
                said = next((ln for ln in reversed(lines) if "selfimprove: error:" in ln),
                            next((ln for ln in reversed(lines) if "Error" in ln), lines[-1] if lines else ""))
                failed.append(f"slurm job {job.job_id} ({run_dir}): {said.strip()[:400]}\n    log: {job.paths.stderr}")
        if failed:
            _fail(f"{len(failed)} of {len(jobs)} job(s) failed; the others finished. Rerun the same command to "
                  f"resume the failed ones.\n  " + "\n  ".join(failed))
        return results

    def _run_dir(self, overrides: Sequence[str]) -> Path:
        """The folder Hydra will give this job (the sweep folder / the overrides' dirname)."""
        cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        return Path(str(OmegaConf.select(cfg, "hydra.sweep.dir"))) / str(OmegaConf.select(cfg, "hydra.sweep.subdir"))
