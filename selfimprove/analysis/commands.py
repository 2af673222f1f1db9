"""The `selfimprove compare` and `selfimprove ls` commands: argument parsing and output over the
analysis modules (cli.py dispatches here, so the command line's module stays about running)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import fail


def _table(rows: list[dict], title: str) -> None:
    from .view import display, print_table

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

    from .budget import equal_compute
    from .groups import CompareError, check_comparable, group_rows, group_runs
    from .paired import paired_rows
    from .plots import heatmap, plot
    from .runs import NotARunError, find_runs, split_unfinished, unique_names
    from .table import comparison_rows, present_metrics, render, x_columns
    from .view import (PAIRED_CAPTION, caption, display, display_budgets, display_paired, markdown,
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
    from .runs import find_runs, NotARunError, slurm_jobs, status
    from ..slurm import job_states

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
