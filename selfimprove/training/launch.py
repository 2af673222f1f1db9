"""Training in several processes: a train stage's training run once per process under
`accelerate launch`, the worker each process starts in, and the rank and barrier they share.

Run as a module, this file is that worker: accelerate launch ... -m selfimprove.training.launch launch.json
"""
from __future__ import annotations

import importlib
import json
import os
from pathlib import Path

from ..rundir import write_json
from ..context import StageContext, StageResult
from ..errors import StageError
from .fit import initial_weights


def data_parallel_or(train, ctx: StageContext) -> StageResult:
    """`train(ctx)` here, or under torchrun in `num_processes` processes (each runs `train`)."""
    if ctx.cfg.num_processes > 1 and "LOCAL_RANK" not in os.environ:
        return _launch_data_parallel(train, ctx)
    return train(ctx)


def _launch_data_parallel(train, ctx: StageContext) -> StageResult:
    """Run this stage's training in `num_processes` processes under `accelerate launch`, with the
    shipped accelerate config named by `distributed` (conf/accelerate/: ddp, fsdp, deepspeed_*).
    Each process gets batch_size / num_processes sequences per step, so the global batch and the
    schedule match a single-process run. On CPU, DDP runs over gloo."""
    import socket
    import subprocess
    import sys

    from omegaconf import OmegaConf

    from ..paths import CONF_DIR

    init = initial_weights(ctx)  # built once, before the workers start
    # the workers import `train` by name: the one place training/ reaches a stage's code, at run
    # time (a stage module imports training/, so training/ cannot import it back)
    spec = {"train": f"{train.__module__}:{train.__qualname__}", "name": ctx.name, "iteration": ctx.iteration, "seed": ctx.seed, "device": ctx.device,
            "inputs": {**ctx.inputs, "init": init}, "out": str(ctx.out),
            "cfg": OmegaConf.to_container(ctx.cfg, resolve=True),
            "model_cfg": OmegaConf.to_container(ctx.model_cfg, resolve=True),
            # validation (select_by_val) prompts and rewards with the task: the workers rebuild it
            "task": OmegaConf.to_container(ctx.task.cfg, resolve=True) if ctx.cfg.get("select_by_val") else None}
    write_json(ctx.out / "launch.json", spec)
    with socket.socket() as s:  # a free rendezvous port: parallel sweep jobs must not collide
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "accelerate.commands.launch",
           "--config_file", str(CONF_DIR / "accelerate" / f"{ctx.cfg.distributed}.yaml"),
           "--num_processes", str(ctx.cfg.num_processes), "--main_process_port", str(port),
           # no --cpu even on CPU: it would start one process; the workers' Trainer (use_cpu) picks gloo
           "-m", "selfimprove.training.launch", str(ctx.out / "launch.json")]
    ctx.ui.log(f"  {ctx.cfg.num_processes} training processes ({ctx.cfg.distributed}): accelerate launch "
               + " ".join(cmd[3:-2]))
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        errors = [line for line in proc.stderr.splitlines() if "Error" in line] or proc.stderr.strip().splitlines()
        raise StageError(f"'{ctx.name}' distributed training failed (exit {proc.returncode}): "
                         + (errors or ["(no output)"])[-1][:2000])
    result = json.loads((ctx.out / "result.json").read_text())
    return StageResult(result["artifacts"], result["metrics"])


def _worker(spec_path: str) -> None:
    """Entry point of each launched process: the same training code, one shard of each batch."""
    from omegaconf import OmegaConf

    from ..tracking import Console

    spec = json.loads(open(spec_path).read())
    cfg = OmegaConf.create(spec["cfg"])
    cfg.init = "given"  # the launcher built or located the initial weights already
    task = None
    if spec.get("task") is not None:
        from ..tasks import build_task

        task = build_task(OmegaConf.create(spec["task"]))
    ctx = StageContext(name=spec["name"], iteration=spec["iteration"], seed=spec["seed"], cfg=cfg, task=task,
                       model_cfg=OmegaConf.create(spec["model_cfg"]), backend_cfg=None, device=spec["device"],
                       inputs=spec["inputs"], out=Path(spec["out"]), ui=Console(quiet=True))
    # the stage's own training function, found by the name the launcher recorded
    module, _, name = spec["train"].partition(":")
    result = getattr(importlib.import_module(module), name)(ctx)
    if rank() == 0:
        write_json(ctx.out / "result.json", {"artifacts": result.artifacts, "metrics": result.metrics})


def rank() -> int:
    """This process's rank among the training processes (0 in a single-process run)."""
    return int(os.environ.get("RANK", "0"))


def barrier() -> None:
    """Wait for every training process (a no-op in a single-process run)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


if __name__ == "__main__":  # accelerate launch ... -m selfimprove.training.launch launch.json
    import sys

    _worker(sys.argv[1])
