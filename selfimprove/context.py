"""What a stage gets from the pipeline (`StageContext`) and what it returns (`StageResult`).

A stage never reads the global config: the pipeline hands it its own section, the task, the model
and backend settings, its input paths and its working folder. Below `stages/` and `training/`,
which both build and read contexts.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

RESUME_DIR = "resume"


@dataclass
class StageContext:
    name: str  # the config section, e.g. "train"
    iteration: int
    seed: int  # derived from the run seed, the iteration and the stage name
    cfg: Any  # the stage's own config section
    task: Any
    model_cfg: Any
    backend_cfg: Any
    device: str
    inputs: dict[str, Optional[str]]  # role -> path (None for a missing optional input)
    out: Path  # the stage's working folder
    ui: Any  # tracking.Console: progress bars and messages
    sharding: Any = None  # the run's `sharding` section: how sampling shards are launched

    @property
    def shards(self) -> int:
        return int(self.cfg.get("shards", 1) or 1) if self.sharding is not None else 1

    @property
    def resume_dir(self) -> Path:
        """Scratch space for resuming a killed stage (e.g. finished sampling chunks); the pipeline
        deletes it when the stage commits, so it never becomes part of the artifacts."""
        path = self.out / RESUME_DIR
        path.mkdir(exist_ok=True)
        return path

    @contextlib.contextmanager
    def sampler(self, model_path: str):
        """A sampling engine on `model_path`, released when the block ends."""
        from .backends import build_sampler

        if self.shards > 1:  # shard jobs load their own engines: load this one only if it is used
            engine = _LazySampler(lambda: build_sampler(self.backend_cfg, model_path, self.model_cfg, self.device))
        else:
            engine = build_sampler(self.backend_cfg, model_path, self.model_cfg, self.device)
        try:
            yield engine
        finally:
            engine.close()


class _LazySampler:
    """Builds the engine on first use. A sharded stage whose chunks the shard jobs sampled never
    loads a model in the coordinating process (on a GPU node it would hold memory a shard needs)."""

    def __init__(self, build):
        self._build, self._engine = build, None

    def __getattr__(self, name):
        if self._engine is None:
            self._engine = self._build()
        return getattr(self._engine, name)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()


@dataclass
class StageResult:
    artifacts: dict[str, str]  # artifact name -> path relative to ctx.out
    metrics: dict[str, Any] = field(default_factory=dict)
