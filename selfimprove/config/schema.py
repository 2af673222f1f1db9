"""The shared schema every run has (`RunConfig`) and the option schemas of the `task=` and
`backend=` groups, which live beside their code (tasks/schemas.py, backends/schemas.py)."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, List, Optional

from omegaconf import MISSING

from ..backends.schemas import HFBackendConfig, VLLMBackendConfig
from ..models.schema import ModelConfig
from ..tasks.schemas import (ArithmeticCorrectionTaskConfig, ArithmeticTaskConfig, GSM8KTaskConfig, MathTaskConfig,
                             PromptsTaskConfig, ReverseAdditionTaskConfig)


@dataclass
class TrackingConfig:
    wandb_mode: str = "disabled"  # disabled | offline | online
    wandb_project: str = "selfimprove"
    wandb_entity: Optional[str] = None
    quiet: bool = False  # no live bars: line-oriented logs for batch jobs
    # the per-iteration table: column title -> "stage.metric"
    table: List[str] = field(
        default_factory=lambda: [
            "generate.samples",
            "filter.kept",
            "rationalize.rationalized",
            "train.steps",
            "evaluate.accuracy",
            "evaluate.val_accuracy",
        ]
    )


@dataclass
class ShardingConfig:
    """How the jobs of a sampling stage with `shards` > 1 are launched (selfimprove/sharding.py)."""

    # auto: Slurm jobs when this run is itself a Slurm job (sbatch on PATH), else local processes
    launcher: str = "auto"  # auto | local | slurm
    # Slurm resources per shard; null: what the current job has (SLURM_* variables)
    partition: Optional[str] = None
    cpus_per_task: Optional[int] = None
    gpus_per_task: Optional[int] = None
    mem_gb: Optional[int] = None
    timeout_min: int = 60
    threads: int = 0  # torch threads per shard; 0: this process's threads / shards (local), at least 1
    retries: int = 1  # extra rounds for chunks a dead shard left missing


@dataclass
class RunConfig:
    """What every run has, whatever its recipe. The stage sections are not here: a recipe's
    `setup` and `stages` lists name them, and each section is checked against the dataclass of its
    `kind` (registered next to the stage's code; see `typed_config`)."""

    iterations: int = 3
    seed: int = 0
    output_root: str = "outputs"
    run_name: str = "${hydra:runtime.choices.recipe}"
    sweep_name: str = "sweep"  # -m runs go to <output_root>/<sweep_name>/<overrides>/
    # What a Hydra sweeper (Optuna) maximises: "<stage>.<metric>" from that stage's last metrics
    # row. Validation, never test: the test split is for reporting only.
    objective: str = "evaluate.val_accuracy"
    device: str = "auto"
    threads: int = 0  # torch CPU threads; 0 = torch's default. Parallel local jobs want 1 each.
    # Reuse finished stages of other runs under the same output_root whose fingerprint matches.
    cache: bool = True
    # A run directory whose saved config differs from the new command is refused unless this is
    # true; then stages whose fingerprint changed (and everything after them) are recomputed.
    reconfigure: bool = False
    # The stage lists: each entry names a section of this config, e.g. `train: {kind: sft, ...}`;
    # a section named after its kind (generate, filter, evaluate...) may leave `kind` out.
    setup: List[str] = MISSING
    stages: List[str] = MISSING
    # stages of `stages` that run in the last iteration only (V-STaR trains its verifier once,
    # after the last iteration; empty the list to train one every iteration)
    last_iteration_only: List[str] = field(default_factory=list)
    model: ModelConfig = field(default_factory=ModelConfig)
    task: Any = MISSING
    backend: Any = MISSING
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    sharding: ShardingConfig = field(default_factory=ShardingConfig)


SHARED_KEYS = tuple(f.name for f in fields(RunConfig))


# Option schemas for groups whose shape depends on the choice (task=, backend=).
GROUP_SCHEMAS = {
    ("task", "arithmetic_schema"): ArithmeticTaskConfig,
    ("task", "gsm8k_schema"): GSM8KTaskConfig,
    ("task", "math_schema"): MathTaskConfig,
    ("task", "arithmetic_correction_schema"): ArithmeticCorrectionTaskConfig,
    ("backend", "hf_schema"): HFBackendConfig,
    ("backend", "vllm_schema"): VLLMBackendConfig,
    ("task", "prompts_schema"): PromptsTaskConfig,
    ("task", "reverse_addition_schema"): ReverseAdditionTaskConfig,
}

# Keys that may change between invocations of one run without being a conflict.
RESUMABLE_CHANGES = ("iterations", "reconfigure", "tracking", "threads", "sweep_name", "cache", "sharding",
                     "objective")  # objective: what a sweeper reads, not what a run computes
# Stage keys that change how a stage runs, not what it produces (kept out of fingerprints)
UNFINGERPRINTED_STAGE_KEYS = ("shards",)
