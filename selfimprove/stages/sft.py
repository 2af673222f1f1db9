"""Supervised fine-tuning with TRL's SFTTrainer on prompt/completion rows (loss on the completion).

Used twice by STaR-style recipes: `seed_sft` trains the from-scratch model on worked examples,
`train` fine-tunes on the filtered self-generated data. Trainer checkpoints are written into the
stage's working folder every `save_steps`, so a killed stage resumes from the last one (with its
optimizer, scheduler and RNG state) and reaches the same weights as an uninterrupted run.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import time
from pathlib import Path
from dataclasses import dataclass

from .. import compute
from ..compute import count_params
from ..config import Problems
from ..models import load_model, load_tokenizer
from ..rundir import read_jsonl, write_json
from . import StageContext, StageError, StageResult, get_stage, register_stage
from .lengths import check_max_length
from .train_options import TrainerConfig


@dataclass
class SFTConfig(TrainerConfig):
    """Supervised fine-tuning with TRL's SFTTrainer, loss on the completion only."""

    # ReST-EM's early stopping: greedy reward on the `val` split at every checkpoint; the best
    # checkpoint, not the last, becomes the stage's model.
    select_by_val: bool = False
    val_max_new_tokens: int = 128
    # Independently seeded copies trained alongside the policy and published as `voters`
    # (easy-to-hard's majority vote across models); 1: just the policy.
    replicas: int = 1

    @staticmethod
    def check(name: str, s, cfg) -> list[str]:
        p = Problems(TrainerConfig.check(name, s, cfg))
        p.need(s.replicas >= 1, f"{name}.replicas must be >= 1 (got {s.replicas}); the paper votes across 5 models.")
        p.need(s.replicas == 1 or (s.num_processes == 1 and not s.select_by_val and not s.lora.enabled),
               f"{name}.replicas > 1 trains plain single-process models: set {name}.num_processes=1, "
               f"{name}.select_by_val=false and {name}.lora.enabled=false, or {name}.replicas=1.")
        p.need(not (s.num_processes > 1 and s.select_by_val and s.distributed != "ddp"),
               f"{name}.select_by_val with {name}.num_processes > 1 needs {name}.distributed=ddp: the first "
               f"process validates the whole model, which under {s.distributed} it does not hold.")
        return p


def _inputs(cfg) -> dict[str, str]:
    roles = {"data": cfg.data}
    if cfg.init != "scratch":
        roles["init"] = cfg.init
    if cfg.select_by_val:
        roles["val"] = "val"
    if cfg.replicas > 1 and cfg.init != "scratch":
        roles["voters"] = "voters"  # each seeded replica goes on from its own previous weights
    return roles


def planned_steps(cfg, iteration: int, examples: int | None = None) -> int:
    """STaR grows the step budget by `step_growth` each outer iteration: int(40 * 1.2 ** (n - 1));
    `max_epochs` caps it at that many passes over `examples` rows."""
    steps = max(1, int(cfg.steps * cfg.step_growth ** max(0, iteration - 1)))
    if cfg.get("max_epochs") is not None and examples:
        steps = min(steps, max(1, math.ceil(cfg.max_epochs * examples / cfg.batch_size)))
    return steps


def _initial_weights(ctx: StageContext) -> str:
    if ctx.cfg.init != "scratch":  # base, policy, or (in a worker) the path the launcher gave
        return ctx.inputs["init"]
    if ctx.model_cfg.name_or_path:
        return ctx.model_cfg.name_or_path
    from ..models.tiny import save_tiny

    return str(save_tiny(ctx.model_cfg.tiny, ctx.out / "init", ctx.seed))


@register_stage("sft", inputs=_inputs, schema=SFTConfig)
def sft(ctx: StageContext) -> StageResult:
    if ctx.cfg.replicas > 1:
        return _replicas(ctx)
    return data_parallel_or(_train, ctx)


def _replicas(ctx: StageContext) -> StageResult:
    """Easy-to-hard's majority vote needs independently seeded models: replicas 1..R-1 are trained
    like the policy (same data and budget, seed + i, each from its own previous weights) into
    voters/replica-i/, and published together as the `voters` artifact. A finished replica leaves
    done.json, so a killed stage skips it and resumes the one it was training."""
    from dataclasses import replace

    for i in range(1, ctx.cfg.replicas):
        out = ctx.out / "voters" / f"replica-{i}"
        if (out / "done.json").exists():
            continue
        out.mkdir(parents=True, exist_ok=True)
        inputs = dict(ctx.inputs)
        if ctx.cfg.init != "scratch":
            prev = Path(ctx.inputs["voters"]) / f"replica-{i}" / "model"
            if not (prev / "config.json").exists():
                raise StageError(f"'{ctx.name}' trains {ctx.cfg.replicas} replicas from their previous weights, but "
                                 f"{prev} does not exist: give the stage that trained them as many replicas.")
            inputs["init"] = str(prev)
        result = _train(replace(ctx, out=out, seed=ctx.seed + i, inputs=inputs))
        write_json(out / "done.json", result.metrics)
    result = _train(ctx)
    return StageResult({**result.artifacts, "voters": "voters"}, {**result.metrics, "replicas": ctx.cfg.replicas})


def data_parallel_or(train, ctx: StageContext) -> StageResult:
    """`train(ctx)` here, or under torchrun in `num_processes` processes (each runs `train`)."""
    if ctx.cfg.num_processes > 1 and "LOCAL_RANK" not in os.environ:
        return _launch_data_parallel(ctx)
    return train(ctx)


def _launch_data_parallel(ctx: StageContext) -> StageResult:
    """Run this stage's training in `num_processes` processes under `accelerate launch`, with the
    shipped accelerate config named by `distributed` (conf/accelerate/: ddp, fsdp, deepspeed_*).
    Each process gets batch_size / num_processes sequences per step, so the global batch and the
    schedule match a single-process run. On CPU, DDP runs over gloo."""
    import socket
    import subprocess
    import sys

    from omegaconf import OmegaConf

    from ..config import CONF_DIR

    init = _initial_weights(ctx)  # built once, before the workers start
    spec = {"name": ctx.name, "iteration": ctx.iteration, "seed": ctx.seed, "device": ctx.device,
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
           "-m", "selfimprove.stages.sft", str(ctx.out / "launch.json")]
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
    result = (_train if cfg.kind == "sft" else get_stage(cfg.kind).fn)(ctx)
    if int(os.environ.get("RANK", "0")) == 0:
        write_json(ctx.out / "result.json", {"artifacts": result.artifacts, "metrics": result.metrics})


def _train(ctx: StageContext) -> StageResult:
    from trl import SFTConfig, SFTTrainer

    rows = training_rows(ctx, "Nothing was kept by the filter: try more samples per problem (generate.k), a higher "
                              "generate.temperature, more problems, or a stronger seed model (more seed_sft.steps).")
    if ctx.model_cfg.chat_template:  # conversational rows: TRL applies the tokenizer's chat template
        pairs = [{"prompt": [{"role": "user", "content": r["prompt"]}],
                  "completion": [{"role": "assistant", "content": r["completion"]}]} for r in rows]
    else:
        pairs = [{"prompt": r["prompt"], "completion": r["completion"]} for r in rows]
    run = fit(ctx, SFTTrainer, SFTConfig, pairs, {"completion_only_loss": True, "packing": False},
              selector_cls=ValSelector if ctx.cfg.select_by_val else None)
    tokens = sum(len(r["prompt"]) + len(r["completion"]) for r in rows)  # chars ~ tokens for the tiny model
    return StageResult({"policy": "model"}, {**run.metrics(ctx.cfg, len(rows)),
                                             "chars_per_example": round(tokens / len(rows), 1)})


def training_rows(ctx: StageContext, advice: str) -> list[dict]:
    rows = read_jsonl(ctx.inputs["data"])
    if not rows:
        raise StageError(f"No training data for '{ctx.name}' in iteration {ctx.iteration} "
                         f"({ctx.inputs['data']} is empty). {advice}")
    return rows


@dataclass
class FitResult:
    steps: int
    resumed_from: int
    seconds: float
    losses: list
    logs: dict  # the last value the trainer logged for each key (e.g. DPO's rewards/accuracies)
    extra: dict
    # every row the trainer logged, including those of steps before a resume (kept in the trainer
    # state of each checkpoint), and its count of input tokens (GRPO: prompts + completions sampled)
    history: list = dataclasses.field(default_factory=list)
    tokens_seen: int = 0

    def first_loss(self):
        logged = [row["loss"] for row in self.history if row.get("loss") is not None]
        first = logged[0] if logged else (self.losses[0] if self.losses else None)
        return round(first, 4) if first is not None else None

    def metrics(self, cfg, examples: int) -> dict:
        return {
            "steps": self.steps,
            "examples": examples,
            "epochs": round(self.steps * cfg.batch_size / examples, 2),
            "train_loss": round(self.losses[-1], 4) if self.losses else None,
            # did training lower it? From the trainer's log history, which a resumed stage restores
            # from its checkpoint, so a resumed run reports the same first loss
            "train_loss_first": self.first_loss(),
            "resumed_from_step": self.resumed_from,
            "processes": int(os.environ.get("WORLD_SIZE", "1")),
            "steps_per_s": round((self.steps - self.resumed_from) / max(self.seconds, 1e-9), 2),
            **self.extra,
        }


def fit(ctx: StageContext, trainer_cls, args_cls, rows: list[dict], args_extra: dict, selector_cls=None,
        trainer_extra: dict | None = None) -> FitResult:
    """Train `ctx.cfg.init`'s weights with a TRL trainer on `rows` and save them to `model/`.

    Shared by every train stage: checkpoints every `save_steps` in the stage folder and resumes
    from the last complete one, stops on a non-finite loss, merges LoRA adapters on save."""
    import datasets
    from transformers import TrainerCallback
    from transformers.trainer_callback import PrinterCallback

    cfg = ctx.cfg
    steps = planned_steps(cfg, ctx.iteration, len(rows))
    init = _initial_weights(ctx)
    tokenizer = load_tokenizer(init, ctx.model_cfg.trust_remote_code)
    longest = check_max_length(ctx.name, cfg.max_length, tokenizer, rows)  # before the slow model load
    model = load_model(init, ctx.model_cfg.dtype, ctx.device, ctx.model_cfg.trust_remote_code)
    checkpoints = ctx.out / "checkpoints"
    world = int(os.environ.get("WORLD_SIZE", "1"))
    common = dict(
        output_dir=str(checkpoints),
        max_steps=steps,
        per_device_train_batch_size=max(1, cfg.batch_size // world),
        learning_rate=cfg.lora.learning_rate if cfg.lora.enabled and cfg.lora.learning_rate is not None
        else cfg.learning_rate,
        adam_beta2=cfg.adam_beta2,
        lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=int(cfg.warmup_ratio * steps),
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=1,
        logging_steps=max(1, min(25, steps // 10)),
        logging_nan_inf_filter=False,  # the Trainer would otherwise hide a NaN loss from the guard
        report_to=[],
        disable_tqdm=True,
        seed=ctx.seed,
        data_seed=ctx.seed,
        # TRL defaults to bf16 and gradient checkpointing; both are slow or unsupported on CPU.
        bf16=str(model.dtype) == "torch.bfloat16",
        fp16=False,
        use_cpu=not ctx.device.startswith("cuda"),
        activation_checkpointing=False,
        max_length=cfg.max_length,
        # None, not 1: datasets' map with num_proc=1 still starts a one-process pool per map
        # (1-3 s each, 15 s of a debug Self-Rewarding setup); the tokenising itself takes ms.
        dataset_num_proc=None,
        dataloader_num_workers=0,
        # compute accounting: the Trainer sums the batches' attention masks over every step and
        # process and keeps the sum in its checkpointed state, so a resumed stage counts the same
        include_num_input_tokens_seen="non_padding",
    )
    # GRPOConfig has no max_length or dataset_num_proc (it tokenizes prompts as it samples)
    known = {f.name for f in dataclasses.fields(args_cls)}
    common = {k: v for k, v in common.items() if k in known or k not in ("max_length", "dataset_num_proc")}
    args = args_cls(**{**common, **args_extra})  # a stage's own settings win (GRPO logs every step)
    losses: list[float] = []
    last_logged: dict = {}  # the latest value of every key the trainer logs
    selector = selector_cls(ctx, tokenizer, init) if selector_cls else None

    class Watch(TrainerCallback):
        """Progress bar, loss record, and a stop on a non-finite loss (keeping the last checkpoint)."""

        def on_step_end(self, args, state, control, **kw):
            advance(1)

        def on_save(self, args, state, control, model=None, **kw):
            if selector:
                selector.check(model, state.global_step)

        def on_log(self, args, state, control, logs=None, **kw):
            loss = (logs or {}).get("loss")
            if loss is None:
                return
            if not math.isfinite(loss):
                raise StageError(
                    f"'{ctx.name}' loss became {loss} at step {state.global_step}; the last good checkpoint is "
                    f"kept in {checkpoints}. Lower {ctx.name}.learning_rate or raise {ctx.name}.warmup_ratio."
                )
            losses.append(loss)
            last_logged.update(logs)

    datasets.disable_progress_bars()
    trainer = trainer_cls(model=model, args=args, train_dataset=datasets.Dataset.from_list(rows),
                          processing_class=tokenizer, callbacks=[Watch()],
                          peft_config=lora_config(cfg.lora, model, init, ctx.name) if cfg.lora.enabled else None,
                          **(trainer_extra or {}))
    trainer.remove_callback(PrinterCallback)  # our progress bar and metrics replace its log dicts
    resume = last_complete_checkpoint(checkpoints)
    done = int(resume.rsplit("-", 1)[-1]) if resume else 0
    if selector and resume:
        # a kill between writing a checkpoint and validating it: validate it now, from disk
        selector.check(lambda: selector.load(resume), done)
    start = time.time()
    with ctx.ui.progress(f"{ctx.name}: training", total=steps, completed=done) as advance:
        result = trainer.train(resume_from_checkpoint=resume)
    seconds = time.time() - start
    if cfg.lora.enabled and trainer.is_world_process_zero():
        trainer.model.merge_and_unload().save_pretrained(str(ctx.out / "model"))
    elif not cfg.lora.enabled:
        trainer.save_model(str(ctx.out / "model"))  # saves on the main process only
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(str(ctx.out / "model"))
    extra = {}
    if selector:
        selector.check(trainer.model, steps)
        extra = selector.finish(ctx.out / "model")
    if trainer.is_world_process_zero():
        shutil.rmtree(checkpoints, ignore_errors=True)  # the final model is kept; resume state is not needed
        shutil.rmtree(ctx.out / "init", ignore_errors=True)
    if not losses:
        losses.append(result.training_loss)
    extra |= {"tokens_trained": int(trainer.state.num_input_tokens_seen), "params": count_params(model),
              "longest_row_tokens": longest}
    history = [dict(row) for row in trainer.state.log_history]
    return FitResult(steps, done, seconds, losses, last_logged, extra, history, int(trainer.state.num_input_tokens_seen))


def last_complete_checkpoint(checkpoints: Path) -> str | None:
    """The newest trainer checkpoint that was completely written. The Trainer writes
    trainer_state.json last, so a checkpoint without a readable one was cut off by a kill; it is
    removed, and training resumes from the one before it."""
    found = sorted(checkpoints.glob("checkpoint-*"), key=lambda d: int(d.name.rsplit("-", 1)[-1]), reverse=True)
    for ckpt in found:
        try:
            json.loads((ckpt / "trainer_state.json").read_text())
            return str(ckpt)
        except (OSError, ValueError):
            shutil.rmtree(ckpt, ignore_errors=True)
    return None


def lora_config(cfg, model, init: str, section: str = "train"):
    """A PEFT LoraConfig, after checking that the target modules exist in the model (`section`:
    the stage's config section, for the advice)."""
    from peft import LoraConfig

    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [t for t in cfg.target_modules if t not in names]
    if missing:
        linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if type(m).__name__ == "Linear"})
        example = [n for n in ("q_proj", "v_proj") if n in linear] or linear[:2]
        raise StageError(f"LoRA target module(s) {missing} do not exist in {init}. Its linear layers are: "
                         f"{', '.join(linear)}. Set e.g. {section}.lora.target_modules=[{','.join(example)}].")
    return LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=list(cfg.target_modules),
                      task_type="CAUSAL_LM")


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


def _barrier() -> None:
    """Wait for every training process (a no-op in a single-process run)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


class ValSelector:
    """Greedy validation reward at each checkpoint; the best weights are saved aside. The history
    lives in the stage folder, so a resumed stage remembers what it had already measured.

    With several training processes (DDP: each holds the whole model) only the first validates,
    saves and finally publishes the chosen weights; the others wait for it at a barrier, so no
    process trains on while the selection is being made and the stage folder is written once."""

    def __init__(self, ctx: StageContext, tokenizer, init: str):
        import copy

        self.ctx, self.init = ctx, init  # init: the weights a LoRA adapter sits on
        self.tokenizer = copy.deepcopy(tokenizer)
        self.tokenizer.padding_side = "left"
        self.problems = read_jsonl(ctx.inputs["val"])
        self.path = ctx.out / "val_history.json"
        self.history = json.loads(self.path.read_text()) if self.path.exists() else {}
        # each validation's sampled tokens, kept beside the history so a resumed stage still counts them
        self.compute_path = ctx.out / "val_compute.json"
        self.compute = json.loads(self.compute_path.read_text()) if self.compute_path.exists() else {}

    def check(self, model, step: int) -> None:
        """Validate the weights of `step` (`model`: the model, or a function that loads it)."""
        if _rank() == 0:
            self._check(model, step)
        _barrier()

    def _check(self, model, step: int) -> None:
        import torch

        from ..backends import SamplingParams
        from ..backends.hf import batched_generate

        if str(step) in self.history:
            return
        if not isinstance(model, torch.nn.Module):
            model = model()
        prompts = [self.ctx.task.prompt(p) for p in self.problems]
        params = SamplingParams(n=1, max_new_tokens=self.ctx.cfg.val_max_new_tokens)
        with torch.random.fork_rng(), compute.metering() as meter:  # validation must not move the training RNG
            outs = batched_generate(model, self.tokenizer, prompts, params, batch_size=256,
                                    chat=self.ctx.model_cfg.chat_template)
        self.compute[str(step)] = meter.counts
        reward = sum(self.ctx.task.reward(o[0], p) for o, p in zip(outs, self.problems)) / max(len(prompts), 1)
        best = max(self.history.values(), default=-1.0)
        self.history[str(step)] = reward
        if reward > best:  # ties keep the earlier (less trained) checkpoint
            model.save_pretrained(self.ctx.out / "best")
        write_json(self.compute_path, self.compute)
        write_json(self.path, self.history)

    def load(self, path):
        """Saved weights: a full model, or (LoRA: the Trainer and `check` save only the adapter) the
        adapter on the initial weights."""
        m = self.ctx.model_cfg
        if not (Path(path) / "adapter_config.json").exists():
            return load_model(path, m.dtype, self.ctx.device, m.trust_remote_code)
        from peft import PeftModel

        return PeftModel.from_pretrained(load_model(self.init, m.dtype, self.ctx.device, m.trust_remote_code), str(path))

    def finish(self, final_dir) -> dict:
        """Publish the best checkpoint's weights into final_dir (on the first process only)."""
        if _rank() != 0:
            _barrier()
            return {}
        best_step = max(self.history, key=lambda s: (self.history[s], -int(s)))
        last_step = max(self.history, key=int)
        if best_step != last_step:
            best = self.ctx.out / "best"
            if (best / "adapter_config.json").exists():  # LoRA: publish the best adapter merged, as the last one was
                self.load(best).merge_and_unload().save_pretrained(final_dir)
            else:
                for f in best.iterdir():
                    shutil.copy2(f, final_dir / f.name)
        shutil.rmtree(self.ctx.out / "best", ignore_errors=True)
        _barrier()
        sampled = {k: sum(c.get(k, 0) for c in self.compute.values()) for k in ("tokens_prompt", "tokens_completion")}
        return {"val_reward": round(self.history[best_step], 4), "selected_step": int(best_step),
                "val_reward_last": round(self.history[last_step], 4), **sampled}


if __name__ == "__main__":  # accelerate launch ... -m selfimprove.stages.sft launch.json
    import sys

    _worker(sys.argv[1])
