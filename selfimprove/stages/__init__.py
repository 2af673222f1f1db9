"""Stages: functions from a typed config and input artifacts to output artifacts and metrics.

A stage never reads the global config: the pipeline hands it a `StageContext` (context.py). Each
module of this package defines stage kinds and nothing else; each kind is
registered with the artifact roles it reads (name -> artifact, '?' marks optional ones) and the
artifacts it writes.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import Any, Callable

from ..context import RESUME_DIR, StageContext, StageResult
from ..errors import StageError
from ..registry import Registry

__all__ = ["PERSISTENT", "RESUME_DIR", "STAGES", "StageContext", "StageError", "StageKind", "StageResult",
           "get_stage", "register_stage", "stage_kinds"]

# Artifacts that live for the whole run; every other artifact made in an iteration expires with it.
PERSISTENT = {"base", "policy", "seed_data", "train", "val", "test"}
# V-STaR: the verifier buffer grows across iterations; its seed rows come from the `seed` split
PERSISTENT |= {"verifier_buffer", "seed"}
# SCoRe with LoRA: Stage II goes on training the adapter Stage I published with its policy
PERSISTENT |= {"policy_adapter"}
# Easy-to-hard: every self-labelled round so far (the mixture draws on them) and the seeded voters
PERSISTENT |= {"self_labels", "voters", "schedule"}  # schedule: L after the latest round


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
