"""Online RL with TRL's GRPOTrainer (Shao et al. 2024, DeepSeekMath), the task's checker as reward.

We do not implement GRPO: sampling, group-normalised advantages, the clipped objective, the KL
term and the loss variants are TRL's. This module maps the stage's config onto `GRPOConfig`
(refusing options the installed TRL lacks), wraps `task.reward` as a TRL reward function (which
also counts the groups that carry no signal), and turns TRL's per-step logs into the stage's
metrics. Training goes through `training.fit`, the helper every train stage shares: trainer checkpoints
every `save_steps` and resume from the last one, the NaN guard, LoRA (the reference is then the
adapter-disabled model) and publishing the merged model.
"""
from __future__ import annotations

import dataclasses
import json
import math
import numbers
import re
import warnings
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from ..errors import Problems, installed
from ..rundir import read_jsonl
from ..training.fit import fit
from ..training.launch import data_parallel_or
from ..training.options import TrainerConfig
from . import StageContext, StageError, StageResult, register_stage


@dataclass
class GRPOVLLMConfig:
    """Sampling inside GRPO through TRL's own vLLM integration (GPU only); off: transformers'
    `generate`, which is what runs on CPU. The keys map to GRPOConfig's `use_vllm`, `vllm_mode`,
    `vllm_gpu_memory_utilization`, `vllm_tensor_parallel_size` and `vllm_server_base_url`."""

    enabled: bool = False
    mode: str = "colocate"  # colocate: vLLM shares the training GPU | server: a `trl vllm-serve` process
    gpu_memory_utilization: float = 0.3  # colocate: the share of the GPU vLLM may take (TRL's default)
    tensor_parallel_size: int = 1
    server_base_url: Optional[str] = None  # server mode, e.g. http://localhost:8000


@dataclass
class GRPOStageConfig(TrainerConfig):
    """Online RL with TRL's GRPOTrainer (stages/grpo.py); the reward is the task's own checker.
    One stage run = `steps` optimizer steps; each step samples `num_generations` completions for
    each of `batch_size / num_generations` training problems. Defaults: DeepSeekMath's GRPO
    (Shao et al. 2024: beta 0.04, clip 0.2, one update per batch, group-normalised advantages,
    per-sequence loss) where it states one, TRL's otherwise."""

    kind: str = "grpo"
    init: str = "policy"  # each iteration goes on from the last one's policy (and uses it as the reference)
    data: str = "train"  # the problem split prompts are drawn from (gold answers used by the reward only)
    steps: int = 50
    batch_size: int = 64  # completions per optimizer step (TRL's per_device_train_batch_size x processes)
    num_generations: int = 8  # group size k: completions per problem, TRL's default (the paper: 64)
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 128  # TRL's max_completion_length
    beta: float = 0.04  # KL coefficient (DeepSeekMath; TRL's default is 0.0, which loads no reference)
    epsilon: float = 0.2  # clip range of the probability ratio
    # TRL's loss variants: grpo (per-sequence mean, the paper's), dapo (TRL's default), dr_grpo, bnpo, ...
    loss_type: str = "grpo"
    scale_rewards: str = "group"  # group (the paper's std normalisation) | batch | none (Dr. GRPO)
    num_iterations: int = 1  # updates per sampled batch (the paper's mu = 1)
    learning_rate: float = 1e-6  # DeepSeekMath's and TRL's; conf/model/tiny.yaml sets the from-scratch one
    warmup_ratio: float = 0.0
    lr_scheduler: str = "constant"  # DeepSeekMath keeps the learning rate constant
    save_steps: int = 10
    # any other GRPOConfig option of the installed TRL, passed through as is (e.g. {top_entropy_quantile: 0.2});
    # one TRL does not have is refused with the installed version
    trl_args: Dict[str, Any] = field(default_factory=dict)
    vllm: GRPOVLLMConfig = field(default_factory=GRPOVLLMConfig)

    @staticmethod
    def check(name: str, s, cfg) -> list[str]:
        """GRPO's settings, including the options the installed TRL must have."""
        p = Problems(TrainerConfig.check(name, s, cfg))
        k = s.num_generations
        p.need(k >= 2, f"{name}.num_generations must be >= 2 (got {k}): GRPO's advantage compares each sample with "
                     f"the other samples of its problem, so a group of one has no advantage. TRL's default is 8, "
                     f"DeepSeekMath's 64; e.g. {name}.num_generations=8.")
        per_process = s.batch_size // max(s.num_processes, 1)
        p.need(k < 2 or (s.batch_size % max(s.num_processes, 1) == 0 and per_process * s.num_processes % k == 0),
             f"{name}.batch_size counts completions per step and must be a multiple of {name}.num_generations "
             f"(and of {name}.num_processes): got batch_size={s.batch_size}, num_generations={k}, num_processes="
             f"{s.num_processes}; e.g. {name}.batch_size={max(k, 1) * 8} for 8 problems per step.")
        p.need(s.temperature > 0, f"{name}.temperature must be > 0 (got {s.temperature}): greedy decoding makes every "
                                f"sample of a group the same, and then no advantage is ever non-zero; the paper uses 1.0.")
        p.need(s.beta >= 0, f"{name}.beta must be >= 0 (got {s.beta}); 0 drops the KL term, DeepSeekMath uses 0.04.")
        p.need(s.epsilon > 0, f"{name}.epsilon must be > 0 (got {s.epsilon}); the paper clips at 0.2.")
        p.need(s.num_iterations >= 1, f"{name}.num_iterations must be >= 1 (got {s.num_iterations}).")
        p.need(s.max_new_tokens >= 1, f"{name}.max_new_tokens must be >= 1 (got {s.max_new_tokens}).")
        p.need(s.scale_rewards in ("group", "batch", "none"),
             f"{name}.scale_rewards must be group, batch or none (got '{s.scale_rewards}').")
        # TRL keeps a sampled batch for num_iterations steps and does not checkpoint it: a checkpoint
        # in the middle of one would resume with a freshly sampled batch
        p.need(s.save_steps >= 1 and s.save_steps % max(s.num_iterations, 1) == 0,
             f"{name}.save_steps must be a multiple of {name}.num_iterations={s.num_iterations} (got {s.save_steps}), "
             f"so that a resumed stage starts at a freshly sampled batch.")
        p.need(s.vllm.mode in ("colocate", "server"), f"{name}.vllm.mode must be colocate or server (got '{s.vllm.mode}').")
        if s.vllm.enabled:
            p.need(installed("vllm"),
                 f"{name}.vllm.enabled needs vLLM, which is not installed: on a CUDA machine run "
                 f"`pip install \"selfimprove[vllm]\"`, or set {name}.vllm.enabled=false (transformers sampling).")
        if installed("trl"):
            p += check_options(s, name)
        return p


# ----------------------------------------------------------------------------- config -> GRPOConfig
def trl_version() -> str:
    import trl

    return trl.__version__


def grpo_fields() -> dict:
    from trl import GRPOConfig

    return {f.name: f for f in dataclasses.fields(GRPOConfig)}


def grpo_args(cfg) -> dict:
    """The GRPOConfig keyword arguments this stage's config asks for (beyond what `fit` sets for
    every trainer), named by our config key so an error can point at it."""
    args = {
        "num_generations": ("num_generations", cfg.num_generations),
        "temperature": ("temperature", cfg.temperature),
        "top_p": ("top_p", cfg.top_p),
        "max_completion_length": ("max_new_tokens", cfg.max_new_tokens),
        "beta": ("beta", cfg.beta),
        "epsilon": ("epsilon", cfg.epsilon),
        "loss_type": ("loss_type", cfg.loss_type),
        "scale_rewards": ("scale_rewards", cfg.scale_rewards),
        "num_iterations": ("num_iterations", cfg.num_iterations),
        # one logged row per step: the metrics below add token counts over the rows, and TRL keeps
        # the rows in the trainer state, so a resumed stage still has those of the steps before the kill
        "logging_steps": ("(internal)", 1),
        "log_completions": ("(internal)", False),
        "disable_dropout": ("(internal)", True),  # the tiny model has none; pretrained ones would blur the ratio
    }
    if cfg.vllm.enabled:
        args.update({
            "use_vllm": ("vllm.enabled", True),
            "vllm_mode": ("vllm.mode", cfg.vllm.mode),
            "vllm_gpu_memory_utilization": ("vllm.gpu_memory_utilization", cfg.vllm.gpu_memory_utilization),
            "vllm_tensor_parallel_size": ("vllm.tensor_parallel_size", cfg.vllm.tensor_parallel_size),
        })
        if cfg.vllm.server_base_url:
            args["vllm_server_base_url"] = ("vllm.server_base_url", cfg.vllm.server_base_url)
    for key, value in dict(cfg.trl_args).items():
        args[key] = (f"trl_args.{key}", value)
    return args


def loss_types() -> list[str]:
    """The loss variants the installed TRL lists in GRPOConfig.loss_type's help text."""
    help_text = grpo_fields()["loss_type"].metadata.get("help", "")
    m = re.search(r"Supported values are (.*?)\.\s", help_text)
    return re.findall(r"'(\w+)'", m.group(1)) if m else []


def check_options(cfg, section: str = "grpo") -> list[str]:
    """Problems with the GRPO options against the installed TRL (validation calls this before a run)."""
    fields, version = grpo_fields(), trl_version()
    out = []
    for key, (ours, _) in grpo_args(cfg).items():
        if key not in fields:
            out.append(f"{section}.{ours} needs GRPOConfig.{key}, which the installed TRL {version} does not have. "
                       f"Upgrade TRL (pip install -U trl) or drop the option.")
    if set(dict(cfg.trl_args)) & _SET_BY_US:
        taken = sorted(set(dict(cfg.trl_args)) & _SET_BY_US)
        out.append(f"{section}.trl_args sets {taken}, which the stage sets itself; use the stage's own keys "
                   f"({section}.steps, {section}.batch_size, {section}.learning_rate, ...) instead.")
    known = loss_types()
    if known and cfg.loss_type not in known:
        out.append(f"{section}.loss_type='{cfg.loss_type}' is not a loss variant of the installed TRL {version}; "
                   f"choose one of {', '.join(known)} (grpo is DeepSeekMath's per-sequence mean).")
    return out


# what `fit` and grpo_args set: trl_args may not override them (the stage's metrics depend on them)
_SET_BY_US = {"output_dir", "max_steps", "per_device_train_batch_size", "learning_rate", "adam_beta2",
              "lr_scheduler_type", "lr_scheduler_kwargs", "warmup_steps", "weight_decay", "max_grad_norm", "seed", "data_seed",
              "save_steps", "save_strategy", "save_total_limit", "logging_steps", "logging_nan_inf_filter",
              "num_generations", "temperature", "beta", "epsilon", "loss_type", "num_iterations",
              "max_completion_length", "top_p", "scale_rewards", "use_vllm", "vllm_mode",
              "vllm_gpu_memory_utilization", "vllm_tensor_parallel_size", "vllm_server_base_url", "use_cpu",
              "report_to", "bf16", "fp16", "disable_tqdm", "dataloader_num_workers", "activation_checkpointing"}


# ----------------------------------------------------------------------------- the reward
def task_reward(task, num_generations: int, right: float = 1.0):
    """A TRL reward function calling `task.reward(completion, problem)` for each completion.

    Also logs (through TRL's `log_metric`, so they land in the trainer's per-step logs) the share of
    groups whose k samples are all right (reward >= `right`) and all wrong (reward <= 0): such a
    group has zero advantage and teaches nothing. A group is k consecutive rows with the same
    problem, as TRL's sampler lays them out."""
    name = type(task).__name__

    def reward(prompts, completions, problem, log_metric=None, **_):
        problems = [json.loads(p) for p in problem]
        texts = [c if isinstance(c, str) else c[-1]["content"] for c in completions]  # conversational: last turn
        out = []
        for text, p in zip(texts, problems):
            r = task.reward(text, p)
            if isinstance(r, bool) or not isinstance(r, numbers.Real) or not math.isfinite(float(r)):
                raise StageError(
                    f"The reward of task '{getattr(task.cfg, 'name', name)}' ({name}.reward) returned {r!r} "
                    f"({type(r).__name__}) for problem {p.get('id', '?')}; GRPO needs a finite number per "
                    f"completion, e.g. 1.0 for a right answer and 0.0 otherwise. Make {name}.reward return a float.")
            out.append(float(r))
        if log_metric is not None:
            groups = _groups(problem, out, num_generations)
            if groups:
                log_metric("groups_all_right", sum(all(r >= right for r in g) for g in groups) / len(groups))
                log_metric("groups_all_wrong", sum(all(r <= 0 for r in g) for g in groups) / len(groups))
        return out

    reward.__name__ = "task_reward"  # TRL names the reward's logged metrics after the function
    return reward


def _groups(keys: list, rewards: list[float], k: int) -> list[list[float]]:
    """Rewards split into complete groups: runs of equal keys, cut into k-sized pieces."""
    groups, start = [], 0
    for i in range(1, len(keys) + 1):
        if i == len(keys) or keys[i] != keys[start]:
            run = rewards[start:i]
            groups += [run[j:j + k] for j in range(0, len(run) - k + 1, k)]
            start = i
    return groups


# ----------------------------------------------------------------------------- the stage
def _inputs(cfg) -> dict[str, str]:
    return {"data": cfg.data, "init": cfg.init}


@register_stage("grpo", inputs=_inputs, schema=GRPOStageConfig)
def grpo(ctx: StageContext) -> StageResult:
    return data_parallel_or(_train, ctx)


def _train(ctx: StageContext) -> StageResult:
    from trl import GRPOConfig, GRPOTrainer

    c, task = ctx.cfg, ctx.task
    # TRL 1.16 asks transformers 5.x a deprecated question every step; the warning is not the user's to fix
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    problems = read_jsonl(ctx.inputs["data"])
    if not problems:
        raise StageError(f"'{ctx.name}' has no problems: {ctx.inputs['data']} is empty. Check task.train_size.")
    prompts = [task.prompt(p) for p in problems]
    if ctx.model_cfg.chat_template:  # conversational rows: TRL applies the tokenizer's chat template
        prompts = [[{"role": "user", "content": p}] for p in prompts]
    rows = [{"prompt": q, "problem": json.dumps(p)} for q, p in zip(prompts, problems)]
    problems_checked = check_options(c, ctx.name)
    if problems_checked:
        raise StageError(" ".join(problems_checked))
    extra = {key: value for key, (_, value) in grpo_args(c).items()}
    run = fit(ctx, GRPOTrainer, GRPOConfig, rows, extra,
              trainer_extra={"reward_funcs": [task_reward(task, c.num_generations)]})
    return StageResult({"policy": "model"}, {**step_metrics(run.history, c, run.tokens_seen),
                                             "steps": run.steps, "resumed_from_step": run.resumed_from,
                                             "problems": len(problems),
                                             # N for the pipeline's FLOPs: without it GRPO's compute went uncounted
                                             "params": run.extra["params"],
                                             "steps_per_s": round((run.steps - run.resumed_from)
                                                                  / max(run.seconds, 1e-9), 3)})


def step_metrics(history: list[dict], c, tokens_seen: int) -> dict:
    """The iteration's monitors from TRL's per-step logs: means over the stage's steps, and the
    first and last `window` steps of reward (the stage's own learning curve).

    Tokens: TRL counts prompt + completion tokens of every sampled sequence in
    `num_input_tokens_seen`; completions are the mean length times the completions sampled. Each
    sampled sequence goes through forward + backward `num_iterations` times (tokens_trained); with
    beta > 0 also once through the reference model, forward only (tokens_reference)."""
    rows = [h for h in history if "reward" in h]
    if not rows:
        return {}

    def avg(key, part=rows):
        vals = [r[key] for r in part if r.get(key) is not None]
        return round(sum(vals) / len(vals), 4) if vals else None

    window = max(1, min(10, len(rows) // 4))
    sampled = [r["completions/mean_length"] for r in rows if r.get("completions/mean_length") is not None]
    completions = round(sum(length * c.batch_size for length in sampled))
    out = {
        "reward_mean": avg("reward"), "reward_first": avg("reward", rows[:window]),
        "reward_last": avg("reward", rows[-window:]),
        "groups_all_right": avg("groups_all_right"), "groups_all_wrong": avg("groups_all_wrong"),
        "groups_zero_std": avg("frac_reward_zero_std"),
        "kl": avg("kl"), "kl_last": avg("kl", rows[-window:]),
        "entropy": avg("entropy"), "completion_length": avg("completions/mean_length"),
        "clipped_completions": avg("completions/clipped_ratio"), "clip_ratio": avg("clip_ratio/region_mean"),
        "train_loss": avg("loss", rows[-window:]),
        "samples": len(sampled) * c.batch_size,
        "tokens_prompt": int(tokens_seen) - completions,
        "tokens_completion": completions,
        "tokens_trained": int(tokens_seen) * c.num_iterations,
        "tokens_reference": int(tokens_seen) if c.beta > 0 else 0,
    }
    return {k: v for k, v in out.items() if v is not None}
