"""The `selfimprove` command.

    selfimprove run [OVERRIDES...]        compose a recipe with Hydra and run (or resume) it
    selfimprove validate [OVERRIDES...]   compose and check a config without running anything
    selfimprove compare RUN_DIR...        runs side by side (--format csv|json|markdown, --plot FILE.png)
    selfimprove ls [OUTPUT_ROOT]          each run with its recipe, status and last accuracy
    selfimprove recipes                   list the available recipes

`run` hands its arguments to Hydra unchanged (`--cfg job`, `-m`, `hydra/launcher=...` all work)
after composing them once itself, so that mistakes get a message that says what to write instead.
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

USAGE = __doc__.split("\n\n")[1]
HYDRA_INFO_FLAGS = {"--help", "-h", "--hydra-help", "--info", "-i", "--version", "--shell-completion", "-sc"}


def _quiet_libraries() -> None:
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("WANDB_SILENT", "true")


def fail(message: str, code: int = 2) -> None:
    print(f"selfimprove: error: {message}", file=sys.stderr)
    sys.exit(code)


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


def _expanded(overrides: list[str]) -> list[list[str]]:
    """One override list per distinct value of every sweep parameter (not the full product):
    enough to validate each value a sweep will use."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import IntervalSweep

    parsed = OverridesParser.create().parse_overrides(overrides)
    firsts, sweeps = [], []
    for o in parsed:
        if o.is_sweep_override():
            sweep = o.value()
            # interval(a,b) (Optuna, Nevergrad) cannot be enumerated: check its two ends
            values = ([str(sweep.start), str(sweep.end)] if isinstance(sweep, IntervalSweep)
                      else list(o.sweep_string_iterator()))
            firsts.append(f"{o.get_key_element()}={values[0]}")
            sweeps.append((len(firsts) - 1, o.get_key_element(), values[1:]))
        else:
            firsts.append(o.input_line)
    variants = [firsts]
    for i, key, rest in sweeps:
        for v in rest:
            variants.append(firsts[:i] + [f"{key}={v}"] + firsts[i + 1:])
    return variants


def compose(overrides: list[str]):
    """Compose and validate the config the way `run` will, raising ConfigError with advice."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from .config import CONF_DIR, ConfigError, explain_config_error, register_configs, validate

    register_configs()
    GlobalHydra.instance().clear()
    cfgs = []
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        for variant in _expanded([o for o in overrides if not o.startswith(("hydra.", "hydra/"))]):
            try:
                cfg = hydra_compose(config_name="config", overrides=variant)
            except (HydraException, OmegaConfBaseException) as exc:
                raise ConfigError(explain_config_error(exc) or str(exc)) from None
            validate(cfg)
            cfgs.append(cfg)
    GlobalHydra.instance().clear()
    return cfgs


def check_output_root(root: str) -> None:
    from .config import ConfigError

    path = Path(root).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise ConfigError(
            f"output_root '{root}' is not writable ({exc.strerror or exc}). Choose a folder you can write to, "
            f"e.g. output_root=$HOME/selfimprove-runs."
        ) from None


def _hydra_task(cfg) -> float | None:
    """What Hydra runs for each job (once for `run`, once per combination for `-m`). Returns the
    final held-out accuracy, which is what a Hydra sweeper (Optuna, Nevergrad) maximises."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from .config import ConfigError
    from .pipeline import run_pipeline
    from .rundir import RunLockedError
    from .stages import StageError
    from .backends.vllm import BackendUnavailable
    from .models import ModelNotFoundError
    from .tasks import TaskDataError
    from .tracking import Console

    hc = HydraConfig.get()
    console = Console(quiet=cfg.tracking.quiet)
    try:
        sweep = cfg.sweep_name if hc.mode == RunMode.MULTIRUN else None
        code = run_pipeline(cfg, Path(hc.runtime.output_dir), list(hc.overrides.task),
                            dict(hc.runtime.choices), console, sweep=sweep)
    except (ConfigError, RunLockedError, StageError, ModelNotFoundError, BackendUnavailable, TaskDataError) as exc:
        fail(str(exc))
    if code:
        sys.exit(code)
    from .compare import final_metric

    return final_metric(Path(hc.runtime.output_dir), "accuracy")


def cmd_run(args: list[str]) -> None:
    import hydra

    from .config import CONF_DIR, ConfigError, register_configs

    if not set(args) & HYDRA_INFO_FLAGS:
        try:
            for cfg in compose(_overrides(args)):
                check_output_root(cfg.output_root)
        except ConfigError as exc:
            fail(str(exc))
    register_configs()
    main = hydra.main(config_path=str(CONF_DIR), config_name="config", version_base=None)(_hydra_task)
    sys.argv = ["selfimprove"] + args
    main()


def cmd_validate(args: list[str]) -> None:
    from omegaconf import OmegaConf

    from .config import ConfigError

    try:
        cfgs = compose(_overrides(args))
        for cfg in cfgs:
            check_output_root(cfg.output_root)
    except ConfigError as exc:
        fail(str(exc))
    print(f"OK: {len(cfgs)} config(s) compose and validate; iterations={cfgs[0].iterations}, "
          f"stages={OmegaConf.to_container(cfgs[0].stages)}")


def _table(rows: list[dict], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col in rows[0]:
        table.add_column(col, justify="right" if col not in ("run", "recipe", "overrides", "status") else "left")
    for r in rows:
        table.add_row(*("" if v is None else (f"{v:.4f}" if abs(v) <= 1 else f"{v:.1f}") if isinstance(v, float)
                        else str(v) for v in r.values()))
    Console().print(table)


def cmd_compare(args: list[str]) -> None:
    import argparse

    from .compare import NotARunError, comparison_rows, find_runs, heatmap, plot, render

    ap = argparse.ArgumentParser(prog="selfimprove compare", description="Runs side by side, one row per iteration.")
    ap.add_argument("runs", nargs="+", help="run directories, or folders of runs (an output root, a sweep)")
    ap.add_argument("--format", default="table", choices=["table", "csv", "json", "markdown"])
    ap.add_argument("--metric", action="append", help="evaluate metric to show (repeatable); default: headline ones")
    ap.add_argument("--plot", metavar="FILE.png", help="write accuracy vs iteration, one line per run")
    ap.add_argument("--heatmap", metavar="FILE.png",
                    help="write accuracy by length x round, one panel per run (per-length evaluations, e.g. easy_to_hard)")
    opts = ap.parse_args(args)
    try:
        runs = find_runs(opts.runs)
    except NotARunError as exc:
        fail(str(exc))
    present, rows = comparison_rows(runs, opts.metric)
    if not present:
        have = {r.name: sorted({k for e in r.evaluations() for k in e} - {"iteration", "stage", "seconds"})
                for r in runs}
        fail("the runs share none of the requested metrics. Each run has:\n" +
             "\n".join(f"  {name}: {', '.join(m) or '(no evaluation yet)'}" for name, m in have.items()) +
             "\nPick some with --metric NAME.")
    if opts.format == "table":
        _table(rows, "selfimprove compare")
    else:
        print(render(rows, opts.format))
    if opts.plot:
        plot(runs, opts.plot, present[0])
        print(f"plot written to {opts.plot}", file=sys.stderr)
    if opts.heatmap:
        try:
            heatmap(runs, opts.heatmap)
        except NotARunError as exc:
            fail(str(exc))
        print(f"heatmap written to {opts.heatmap}", file=sys.stderr)


def cmd_ls(args: list[str]) -> None:
    from .compare import find_runs, NotARunError, status

    root = args[0] if args else "outputs"
    try:
        runs = find_runs([root])
    except NotARunError:
        fail(f"no runs under {root}. Start one with `selfimprove run recipe=star` (runs go to outputs/ by default).")
    rows = []
    for run in runs:
        evals = run.evaluations()
        rows.append({"run": str(run.path.relative_to(root)) if run.path != Path(root) else run.name,
                     "recipe": run.recipe, "status": status(run),
                     "iterations": max((e["iteration"] for e in evals), default=None),
                     "accuracy": evals[-1].get("accuracy") if evals else None})
    _table(rows, f"runs in {root}")


def cmd_recipes(args: list[str]) -> None:
    from .config import available_recipes

    for name, path in available_recipes().items():
        first = next((ln[1:].strip() for ln in path.read_text().splitlines() if ln.startswith("#")), "")
        print(f"{name:20s} {first}")


COMMANDS = {"run": cmd_run, "validate": cmd_validate, "compare": cmd_compare, "ls": cmd_ls, "recipes": cmd_recipes}


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
