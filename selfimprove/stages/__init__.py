"""Stages: functions from a typed config and input artifacts to output artifacts and metrics.

A stage never reads the global config: the pipeline hands it a `StageContext`. Each stage kind is
registered with the artifact roles it reads (name -> artifact, '?' marks optional ones) and the
artifacts it writes.
"""
from __future__ import annotations

import contextlib
import importlib
import pkgutil
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from ..registry import Registry

# Artifacts that live for the whole run; every other artifact made in an iteration expires with it.
RESUME_DIR = "resume"
PERSISTENT = {"base", "policy", "seed_data", "train", "val", "test"}
# V-STaR: the verifier buffer grows across iterations; its seed rows come from the `seed` split
PERSISTENT |= {"verifier_buffer", "seed"}
# SCoRe with LoRA: Stage II goes on training the adapter Stage I published with its policy
PERSISTENT |= {"policy_adapter"}
# Easy-to-hard: every self-labelled round so far (the mixture draws on them) and the seeded voters
PERSISTENT |= {"self_labels", "voters", "schedule"}  # schedule: L after the latest round


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
        from ..backends import build_sampler

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


@dataclass(frozen=True)
class StageKind:
    fn: Callable[[StageContext], StageResult]
    inputs: Callable[[Any], dict[str, str]]  # stage cfg -> {role: artifact name}
    # the dataclass a section of this kind is checked against (its defaults fill what a recipe
    # leaves out); an optional `check(name, section, cfg) -> list[str]` on it adds semantic checks
    schema: type


STAGES: Registry[StageKind] = Registry("stage kind")


def register_stage(kind: str, inputs: Callable[[Any], dict[str, str]], schema: type):
    """Register a stage kind: its function, the artifacts it reads and its config dataclass. A new
    kind is one module in this package; it is found by `stage_kinds` without being listed anywhere."""
    return STAGES.register(kind, wrap=lambda fn: StageKind(fn, inputs, schema))


def stage_kinds() -> Registry[StageKind]:
    """Every stage kind: importing each module of this package registers the kinds it defines
    (modules already imported cost nothing)."""
    for mod in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{mod.name}")
    return STAGES


def get_stage(kind: str) -> StageKind:
    return stage_kinds().get_or_explain(kind)


class StageError(RuntimeError):
    """A stage cannot go on (empty data, NaN loss...): the message says why and what to try."""
