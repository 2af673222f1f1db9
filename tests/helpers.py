"""Scaffolding the tests share: the small tiny model, a StageContext for running one stage by
hand, the CLI's command line for subprocess runs, and a run's metrics by (iteration, stage)."""
from __future__ import annotations

import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from omegaconf import OmegaConf

from selfimprove.config import ModelConfig, TinyModelConfig
from selfimprove.context import StageContext
from selfimprove.rundir import read_jsonl
from selfimprove.tracking import Console

# A tiny model small enough for a stage test to train in seconds on one CPU thread.
TINY = TinyModelConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)

# `selfimprove` as a subprocess: the package this test imports, not whatever is on PATH.
CLI = [sys.executable, "-m", "selfimprove.cli"]


def tiny_model_cfg(**kw):
    """The `model` section of a run on TINY (a from-scratch model: name_or_path null)."""
    return OmegaConf.structured(ModelConfig(tiny=TINY, **kw))


def stage_context(name: str, cfg, out: Path, *, inputs=None, task=None, model_cfg=None, backend_cfg=None,
                  iteration: int = 1, seed: int = 0, device: str = "cpu", ui=None, sharding=None) -> StageContext:
    """What the pipeline hands a stage, built by hand: `cfg` is the stage's section (a dataclass
    instance, a dict or a DictConfig), `out` its working folder; the model is TINY unless given."""
    section = cfg if OmegaConf.is_config(cfg) else OmegaConf.structured(cfg) if not isinstance(cfg, dict) \
        else OmegaConf.create(cfg)
    return StageContext(name=name, iteration=iteration, seed=seed, cfg=section, task=task,
                        model_cfg=model_cfg if model_cfg is not None else tiny_model_cfg(), backend_cfg=backend_cfg,
                        device=device, inputs=dict(inputs or {}), out=Path(out), ui=ui or Console(quiet=True),
                        sharding=sharding)


def cli(*args: str, **kw) -> subprocess.CompletedProcess:
    """`selfimprove ARGS` in a subprocess, output captured as text."""
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, **kw)


def metrics_by_stage(run_dir: Path) -> dict[tuple[int, str], dict]:
    """A run's metrics.jsonl as {(iteration, stage): row}."""
    return {(r["iteration"], r["stage"]): r for r in read_jsonl(Path(run_dir) / "metrics.jsonl")}


@contextmanager
def chat_template(tokenizer, template: str):
    """The tokenizer with `template` as its chat template for the block (the tiny one has none)."""
    tokenizer.chat_template = template
    try:
        yield tokenizer
    finally:
        tokenizer.chat_template = None
