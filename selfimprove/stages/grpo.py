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

from ..rundir import read_jsonl
from ..training.fit import fit
from ..training.launch import data_parallel_or
from . import StageContext, StageError, StageResult, register_stage


class GRPOOptionError(ValueError):
    """A GRPO option the installed TRL does not have, or a value it does not accept."""


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
              "lr_scheduler_type", "warmup_steps", "weight_decay", "max_grad_norm", "seed", "data_seed",
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


@register_stage("grpo", inputs=_inputs)
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
