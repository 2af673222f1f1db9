"""`validate`: semantic checks that a schema cannot express, run once on a `typed_config` before
any stage runs. A stage kind's own settings are checked by its dataclass's `check` (beside its
code); what spans sections or applies to keys many kinds share is checked here."""
from __future__ import annotations

import re
from typing import Any, Optional

from omegaconf import OmegaConf

from .. import easy_to_hard
from ..errors import ConfigError, installed
from ..stages import stage_kinds


def validate(cfg: Any) -> None:
    """Raise ConfigError listing every problem of `cfg`, each with what to write instead."""
    problems: list[str] = []

    def need(ok: bool, msg: str) -> None:
        if not ok:
            problems.append(msg)

    need(cfg.iterations >= 0, f"iterations must be >= 0 (got {cfg.iterations}).")
    names = list(dict.fromkeys(list(cfg.setup) + list(cfg.stages)))
    kinds = stage_kinds()
    # the format only: whether the stage writes the metric is known after a run (cli._objective)
    stage, _, metric = str(cfg.get("objective", "evaluate.val_accuracy")).partition(".")
    need(bool(stage) and bool(metric), f"objective must be '<stage>.<metric>' (got '{cfg.get('objective')}'), e.g. "
                                       f"objective=evaluate.val_accuracy (validation: keep test for reporting).")
    # a kind that reports on the test split names its validation metric (VAL_OBJECTIVE)
    val_metric = getattr(kinds[cfg[stage].kind].schema, "VAL_OBJECTIVE", None) if stage in names else None
    need(val_metric is None or metric.startswith("val_"),
         f"objective={stage}.{metric} reads the test split, which is for reporting only; a sweep must choose on "
         f"validation: objective={stage}.{val_metric}.")
    extra = [s for s in cfg.get("last_iteration_only", []) if s not in cfg.stages]
    need(not extra, f"last_iteration_only lists {extra}, which are not in stages={list(cfg.stages)}.")
    for name in names:
        s = cfg[name]
        # keys many kinds share
        if "temperature" in s:
            need(s.temperature >= 0, f"{name}.temperature must be >= 0 (got {s.temperature}); use 0 for greedy.")
        if "top_p" in s:
            need(0 < s.top_p <= 1, f"{name}.top_p must be in (0, 1] (got {s.top_p}).")
        if "k" in s and isinstance(s.k, int):
            need(s.k >= 1, f"{name}.k must be >= 1 (got {s.k}).")
        if "shards" in s:
            need(s.shards >= 1, f"{name}.shards must be >= 1 (got {s.shards}); 1 samples in this process.")
        # what is trained on never comes from the test split (a kind that samples its `split` checks it)
        need("test" not in list(s.get("splits") or []),
             f"{name} reads the test split, which is for reporting only; use train (or val to choose something).")
        if "lora" in s and s.lora.enabled:  # train stages and the SCoRe trainer
            need(installed("peft"), f"{name}.lora.enabled needs peft: pip install \"selfimprove[lora]\".")
        check = getattr(kinds[s.kind].schema, "check", None)
        if check is not None:
            problems += check(name, s, cfg)
    if cfg.task.name == "reverse_addition":
        problems += easy_to_hard.schedule_problems(cfg, names)
    if cfg.task.get("correction_template"):
        need(cfg.task.correction_template.startswith("{attempt}"),
             f"task.correction_template must begin with the placeholder {{attempt}}, where the first attempt goes: "
             f"the instruction follows it, as in the paper (got {cfg.task.correction_template!r}); e.g. "
             f"'{{attempt}}\\nCheck each step and fix any error.\\nA:'.")
        for key in ("blind_spot_rate", "demo_first_error_rate", "demo_fix_rate", "demo_break_rate"):
            need(0 <= cfg.task.get(key, 0) <= 1, f"task.{key} must be a share in [0, 1] (got {cfg.task.get(key)}).")
    if cfg.backend.name == "vllm":
        need(installed("vllm"), "backend=vllm needs vLLM, which is not installed: in a CUDA environment run "
                                "`pip install \"selfimprove[vllm]\"`, or use backend=hf.")
    need(_device_available(cfg.device) is None, _device_available(cfg.device) or "")
    if "device" in cfg.backend and cfg.backend.device != "auto":
        need(_device_available(cfg.backend.device) is None, f"backend.{_device_available(cfg.backend.device) or ''}")
    need(cfg.model.dtype in ("auto", "float32", "bfloat16", "float16"),
         f"model.dtype must be auto, float32, bfloat16 or float16 (got '{cfg.model.dtype}').")
    need(cfg.sharding.launcher in ("auto", "local", "slurm"),
         f"sharding.launcher must be auto, local or slurm (got '{cfg.sharding.launcher}').")
    need(cfg.sharding.retries >= 0 and cfg.sharding.timeout_min >= 1,
         "sharding.retries must be >= 0 and sharding.timeout_min >= 1.")
    problems += judge_problems(cfg, names)
    from ..models.checks import local_problems

    problems += local_problems(cfg.model)
    if problems:
        raise ConfigError("Invalid configuration:\n  - " + "\n  - ".join(problems))


def _device_available(device: str) -> Optional[str]:
    """None if `device` can run here, else why not (checked at startup: a run must not reuse and
    train for minutes, then die on the first tensor moved to a device that is not there)."""
    if device in ("auto", "cpu"):
        return None
    m = re.fullmatch(r"cuda(?::(\d+))?", device)
    if not m:
        return f"device must be auto, cpu, cuda or cuda:N (got '{device}')."
    import torch

    if not torch.cuda.is_available():
        return (f"device={device} but this machine has no usable CUDA GPU (torch {torch.__version__}, "
                f"CUDA available: no). Use device=auto (CPU here) or run on a GPU machine.")
    if m.group(1) is not None and int(m.group(1)) >= torch.cuda.device_count():
        return f"device={device} but only {torch.cuda.device_count()} CUDA device(s) are visible."
    return None


def judge_problems(cfg: Any, names: list[str]) -> list[str]:
    """Self-Rewarding's startup checks across sections: the judge template has its placeholders, the
    task offers judge seed data, and the score regex reads scores from the EFT data the model will be
    taught (else every judgment would be unparseable, an hour later). A judging section is one with
    a `template` and a `score_regex`; each kind checks its own numbers."""
    used = [n for n in names if n in cfg and OmegaConf.is_dict(cfg[n]) and "template" in cfg[n]
            and "score_regex" in cfg[n] and cfg[n].enabled]
    out: list[str] = []
    if not used:
        return out
    from ..judges import JudgeConfigError, check_regex_on, compile_score_regex, load_template

    try:
        s = cfg[used[0]]
        load_template(s.template)
        rx = compile_score_regex(s.score_regex)
        from ..tasks import JudgingTask, TaskDataError, build_task

        eft: list = []
        try:
            task = build_task(cfg.task)
            if not isinstance(task, JudgingTask):
                out.append(f"stages {used} judge the model's answers, and task={cfg.task.name} offers no judge seed "
                           "data or self-instruction format; use task=arithmetic, or task=prompts with task.seed_path.")
            elif any("eft_source" in cfg[n] for n in used):  # a stage that teaches judging from EFT data
                eft = task.eft_examples(task.splits().get("seed", [])[:50], 2, 0)
                check_regex_on(rx, [e["judgment"] for e in eft], s.min_score, s.max_score, f"task={cfg.task.name}")
        except TaskDataError as exc:
            out.append(str(exc))
    except JudgeConfigError as exc:
        out.append(str(exc))
    return out
