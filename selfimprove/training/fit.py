"""The training loop every train stage (sft, dpo, grpo) shares: a TRL trainer on a stage's rows,
from its initial weights, for its planned number of steps, to the published `model/` folder."""
from __future__ import annotations

import dataclasses
import math
import os
import shutil
import time
from dataclasses import dataclass

from ..compute import count_params
from ..models import load_model, load_tokenizer
from ..rundir import read_jsonl
from ..context import StageContext
from ..errors import StageError
from .lengths import check_max_length
from .checkpoints import last_complete_checkpoint
from .lora import lora_config


def planned_steps(cfg, iteration: int, examples: int | None = None) -> int:
    """STaR grows the step budget by `step_growth` each outer iteration: int(40 * 1.2 ** (n - 1));
    `max_epochs` caps it at that many passes over `examples` rows."""
    steps = max(1, int(cfg.steps * cfg.step_growth ** max(0, iteration - 1)))
    if cfg.get("max_epochs") is not None and examples:
        steps = min(steps, max(1, math.ceil(cfg.max_epochs * examples / cfg.batch_size)))
    return steps


def initial_weights(ctx: StageContext) -> str:
    """The weights training starts from (a scratch model is built in the stage folder)."""
    if ctx.cfg.init != "scratch":  # base, policy, or (in a worker) the path the launcher gave
        return ctx.inputs["init"]
    if ctx.model_cfg.name_or_path:
        return ctx.model_cfg.name_or_path
    from ..models.tiny import save_tiny

    return str(save_tiny(ctx.model_cfg.tiny, ctx.out / "init", ctx.seed))


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


def scheduler_kwargs(cfg, steps: int) -> dict:
    """The scheduler's own settings: warmup_stable_decay decays linearly over the last
    `decay_ratio` of the steps (the easy-to-hard paper's code), the rest of its length is stable."""
    if cfg.lr_scheduler != "warmup_stable_decay":
        return {}
    return {"num_decay_steps": int(cfg.decay_ratio * steps), "min_lr_ratio": cfg.min_lr_ratio, "decay_type": "linear"}


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
    init = initial_weights(ctx)
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
        lr_scheduler_kwargs=scheduler_kwargs(cfg, steps),
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
