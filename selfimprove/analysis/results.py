"""The results page (docs/results.md) from a sweep folder of finished runs: per recipe, mean and
95% t-interval over seeds at iteration 0, at the final iteration and per iteration; the gain over
the `train_longer` control paired by seed model; accuracy at equal compute; the paired tests of
`compare --paired`; curves. scripts/results.py runs the sweep and calls `write_page`."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

from .budget import curve, equal_compute
from .groups import CompareError, group_runs
from .paired import OWN_SEED_MODEL, paired_rows, seed_pairs
from .runs import Run, find_runs, split_unfinished
from .stats import INTERVAL, t_interval
from .view import PAIRED_CAPTION, display_budgets, display_paired, interval_cell, markdown

CONTROLS = ("train_longer", "gold_sft")
BASELINE = "train_longer"
METRIC = {"score": "acc_t2"}  # the held-out accuracy a recipe reports, when not `accuracy`
DEFAULT_METRIC = "accuracy"


def metric(recipe: str) -> str:
    return METRIC.get(recipe, DEFAULT_METRIC)


def sweep_runs(sweep_dir: Path) -> tuple[dict[str, list[Run]], list[str]]:
    """(recipe -> its finished runs sorted by seed, one line per run left out: its folder and
    status). A run that failed or has not finished is left out whole: one failed seed that only
    evaluated iteration 0 would otherwise pull its recipe's final row back to iteration 0."""
    runs = find_runs([str(sweep_dir)]) if sweep_dir.is_dir() else []
    done, left_out = split_unfinished(runs)
    by_recipe: dict[str, list[Run]] = {}
    for r in sorted(done, key=lambda r: (r.recipe, r.seed)):
        if any(e.get(metric(r.recipe)) is not None for e in r.evaluations()):
            by_recipe.setdefault(r.recipe, []).append(r)
    return by_recipe, [f"{r.path.name}: {state}" for r, state in left_out]


def _curve(run: Run) -> list[dict]:
    m = metric(run.recipe)
    return [{"iteration": e["iteration"], "accuracy": e[m], "cum_flops": run.flops_through(e["iteration"]),
             "cum_seconds": run.seconds_through(e["iteration"])} for e in run.evaluations() if e.get(m) is not None]


def _mean(xs: list) -> Optional[float]:
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def summarize(by_recipe: dict[str, list[Run]]) -> dict:
    """Per recipe: per-iteration mean ± interval over seeds and the iteration-0 and final figures.
    Every run here finished, so every seed's final point is its last iteration."""
    out = {}
    for recipe, runs in by_recipe.items():
        curves = {r.seed: _curve(r) for r in runs}
        per_iter = []
        for it in sorted({p["iteration"] for c in curves.values() for p in c}):
            pts = [p for c in curves.values() for p in c if p["iteration"] == it]
            per_iter.append({"iteration": it, "n": len(pts), "acc": t_interval([p["accuracy"] for p in pts]),
                             "cum_flops": _mean([p["cum_flops"] for p in pts]),
                             "cum_seconds": _mean([p["cum_seconds"] for p in pts])})
        finals = {s: c[-1] for s, c in curves.items()}
        out[recipe] = {"runs": runs, "per_iter": per_iter, "seeds": sorted(curves),
                       "start": t_interval([c[0]["accuracy"] for c in curves.values()]),
                       "final": t_interval([f["accuracy"] for f in finals.values()]),
                       "final_iteration": sorted({f["iteration"] for f in finals.values()}),
                       "flops": _mean([f["cum_flops"] for f in finals.values()]),
                       "seconds": _mean([f["cum_seconds"] for f in finals.values()])}
    return out


def gain_over(summary: dict, recipe: str, baseline: str = BASELINE) -> str:
    """Final accuracy minus the baseline's over the seeds whose two runs started from the same
    seed model (Self-Rewarding's M1 and SCoRe's two-turn model are their own: n/a)."""
    if baseline not in summary or recipe == baseline:
        return "-"
    pairs = seed_pairs(summary[recipe]["runs"], summary[baseline]["runs"])
    if not pairs:
        return OWN_SEED_MODEL
    final = lambda r: _curve(r)[-1]["accuracy"]  # noqa: E731
    return interval_cell(*t_interval([final(a) - final(b) for a, b in pairs]), sign=True)


def equal_compute_lines(summary: dict) -> list[str]:
    """The equal-compute table: each recipe's accuracy at FLOPs budgets (since the seed model)
    that every recipe reaches past its first iteration, or why there is none."""
    groups = {recipe: s["runs"] for recipe, s in summary.items()}
    if len(groups) < 2:
        return ["One recipe here: equal compute compares recipes, see the FLOPs curve for this one's."]
    metrics = {r: metric(r) for r in groups}
    budgets, table, why = equal_compute(groups, metrics)
    left_out = []
    # A recipe that spends less in all than another spends on its first iteration leaves no common
    # budget: leave out the one that ends first (said below) until the rest share one.
    while not budgets and len(groups) > 2 and why:
        ends = {r: min(c[-1][0] if c else 0.0 for c in (curve(run, metrics[r]) for run in runs))
                for r, runs in groups.items()}
        first = min(ends, key=ends.get)
        left_out.append(f"`{first}` (spends {ends[first]:.3g} FLOPs after its seed model in all)")
        groups = {r: v for r, v in groups.items() if r != first}
        budgets, table, why = equal_compute(groups, metrics)
    if not budgets:
        return [f"No FLOPs budget is reached by every recipe past its first iteration ({why}), so there is no "
                f"equal-compute comparison here; the FLOPs column and the FLOPs curve show each recipe's own."]
    order = sorted(table, key=lambda r: (r in CONTROLS, r))
    header, cells = display_budgets(budgets, {r: table[r] for r in order}, "accuracy")
    cells = [[f"`{c[0]}`"] + c[1:] for c in cells]
    return [markdown(["recipe"] + [h.replace("accuracy % at ", "at ") for h in header[1:]], cells), "",
            "Each run's accuracy against the FLOPs its stages recorded since its iteration-0 evaluation, read "
            "(linearly between evaluations) at budgets every recipe reaches after its first iteration, then "
            f"mean ± {INTERVAL}."] + ([f"Left out, as they end before another recipe has finished its first "
                                       f"iteration: {', '.join(left_out)}."] if left_out else [])


def paired_lines(summary: dict) -> list[str]:
    """`selfimprove compare --group-by recipe --paired` over the finished runs, one table per
    test set (runs of another task, or evaluated on other problems, are not comparable)."""
    by_test: dict[tuple, list[Run]] = {}
    for s in summary.values():
        for run in s["runs"]:
            if any(e.get("stage") == "evaluate" for e in run.evaluations()):
                by_test.setdefault((run.task_name, run.test_checksum), []).append(run)
    lines = []
    for (task, _), runs in sorted(by_test.items(), key=lambda kv: -len(kv[1])):
        try:
            units = group_runs(runs, "recipe")
            if len(units) < 2:
                continue
            table = markdown(*display_paired(paired_rows(units)))
        except CompareError as exc:  # e.g. a recipe with one seed so far: say why there is no table
            lines += [f"Task `{task}`: no paired table ({exc})", ""]
            continue
        lines += [f"Task `{task}`, recipes {', '.join(f'`{u}`' for u in sorted(units))}:", "", table, ""]
    return lines + ([PAIRED_CAPTION, ""] if any(line.startswith("|") for line in lines) else [])


def plots(summary: dict, out_dir: Path, stem: str = "results") -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    for xkey, xlabel, fname in (("iteration", "iteration", f"{stem}_iterations.png"),
                                ("cum_flops", "cumulative FLOPs (recorded by the stages)", f"{stem}_flops.png")):
        fig, ax = plt.subplots(figsize=(8.5, 4.5))
        for recipe, s in sorted(summary.items()):
            pts = [p for p in s["per_iter"] if p[xkey] is not None]
            if not pts:
                continue
            xs = [p[xkey] for p in pts]
            ms = [100 * p["acc"][0] for p in pts]
            hs = [100 * (p["acc"][1] or 0) for p in pts]
            ax.plot(xs, ms, "--" if recipe in CONTROLS else "-", marker="o", label=recipe)
            # an accuracy lies in [0, 100]: a t-interval over a few widely spread seeds reaches past it
            ax.fill_between(xs, [max(0.0, m - h) for m, h in zip(ms, hs)], [min(100.0, m + h) for m, h in zip(ms, hs)],
                            alpha=0.15)
        if xkey == "cum_flops":
            ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("held-out accuracy (%)")
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))  # outside: never over a curve
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out_dir / fname, dpi=110)
        plt.close(fig)
        names.append(fname)
    return names


def command_line(args) -> str:
    """The scripts/results.py call that wrote the page (a --no-run page is built from runs made beforehand)."""
    setting = getattr(args, "setting", "tiny")
    return ("python scripts/results.py" + (f" --setting {setting}" if setting != "tiny" else "")
            + (" --no-run" if args.no_run else f" --seeds {args.seeds}")
            + (f" --profile {args.profile}" if args.profile != "default" else "")
            + (f" --recipes {args.recipes}" if args.recipes else "")
            + (f" --sweep {args.sweep}" if args.sweep != default_sweep(setting) else ""))


def default_sweep(setting: str) -> str:
    """The sweep folder of a setting's runs: one output root holds every setting's."""
    return "results" if setting == "tiny" else f"results-{setting}"


def tuned_lines(tuned, chosen: Optional[str], table: list) -> list[str]:
    """What a real model's page chose on validation before its runs (results_plan.Tuned): each
    candidate's validation accuracy and the winner."""
    cells = ", ".join(f"`{v}`: " + ("not finished" if acc is None else f"{100 * acc:.1f}%") for v, acc in table)
    return [f"**Chosen on validation** (one run each, seed 0, {tuned.recipe} evaluated on the validation "
            f"split only): `{tuned.key}` {cells}; " + (f"the runs below use `{chosen}`." if chosen else
                                                         f"not chosen yet, so `{tuned.recipe}` has no row."), ""]


def page(summary: dict, args, images: list[str], unfinished: list[str] = (), paired: list[str] = (),
         more: list[str] = (), commit: Optional[str] = None, setting=None, tuned: list[str] = ()) -> str:
    """The page's Markdown. `setting` (results_plan.Setting): a real model's page, with its title
    and its paragraph on the model, task and budgets in place of the seed-model sentence; `tuned`:
    the lines of what it chose on validation (`tuned_lines`)."""
    seeds = sorted({s for v in summary.values() for s in v["seeds"]})
    versions = sorted({r.info.get("code_version") for v in summary.values() for r in v["runs"]} - {None})
    lines = [
        f"# {setting.title if setting else 'Results'}",
        "",
        f"{'Built from finished runs' if args.no_run else 'Regenerated'} by `{command_line(args)}` on "
        f"{time.strftime('%Y-%m-%d')}" + (f" at commit {commit}" if commit else "")
        + (" (a subset of the recipes: the others have no row here)." if args.recipes else "."),
        (f"Runs made by selfimprove {', '.join(versions)} (run.json's code_version). " if versions else "")
        + f"Seeds: {', '.join(map(str, seeds))}. "
        + (setting.about if setting else "Each seed is a separate run of the whole recipe, seed model included; runs "
           "with the same seed share their seed model through the stage cache."),
        "",
        "Accuracy: greedy accuracy on the held-out test split (SCoRe: turn-2 accuracy), in percent. "
        "Intervals: two-sided 95% t-interval over seeds, mean ± t(0.975, n-1)·s/√n; a figure from one "
        "seed says so. The gain over `train_longer` pairs the runs of a seed that started from the same seed "
        "model (n/a for recipes with a seed model of their own). FLOPs: what every stage records "
        "(2·N per sampled token, 6·N per trained token, N = parameters), summed over the run, "
        "setup and evaluations included; wall time likewise, with the runs sharing the machine's cores "
        f"(`--jobs {args.jobs}` at a time), so times are comparable only within this page. Only finished "
        "runs count; the others are listed at the end.",
        "",
    ]
    if args.profile != "default":
        lines += [f"**profile={args.profile}: every budget is shrunk; these numbers test the plumbing and mean "
                  "nothing about the methods.**", ""]
    lines += list(tuned)
    lines += ["## Final iteration", "",
              "| recipe | seeds | iteration 0 | final | gain over train_longer | FLOPs | wall time |",
              "|---|---|---|---|---|---|---|"]
    order = sorted(summary, key=lambda r: (r in CONTROLS, r))
    for recipe in order:
        s = summary[recipe]
        flops = "-" if s["flops"] is None else f"{s['flops']:.2e}"
        lines.append(f"| `{recipe}`{' (control)' if recipe in CONTROLS else ''} | {len(s['seeds'])} | "
                     f"{interval_cell(*s['start'])} | {interval_cell(*s['final'])} | {gain_over(summary, recipe)} | "
                     f"{flops} | {(s['seconds'] or 0) / 60:.1f} min |")
    lines += ["", "## Equal compute", ""] + equal_compute_lines(summary)
    lines += ["", "## Per iteration", ""]
    for recipe in order:
        lines.append(f"- `{recipe}`: " + " → ".join(interval_cell(*p["acc"]) for p in summary[recipe]["per_iter"]))
    lines += ["", "## Curves", ""] + [f"![{name}]({name})" for name in images]
    if paired:
        lines += ["", "## Paired comparisons on the same test problems", "",
                  "Every two recipes at their final iterations (`selfimprove compare <runs> --group-by recipe "
                  "--paired`); the problem-level tests treat the seeds as fixed, the last column does not.", ""]
        lines += list(paired)
    if unfinished:
        lines += ["", "## Runs that did not finish (left out above)", ""] + [f"- `{u}`" for u in unfinished]
    if more:  # pages next to this one: what a row here cannot show (V-STaR's verifier, SCoRe's turns, ...)
        lines += ["", "## More per method", "",
                  "Rows above give each recipe's greedy accuracy; these pages have what is particular to a method "
                  "(V-STaR's verifier Best-of-k, Self-Rewarding's judge, SCoRe's turns, easy-to-hard's lengths):",
                  ""] + [f"- [{m}]({m})" for m in more]
    shown = "<output root>" if Path(args.output_root).is_absolute() else args.output_root  # no machine's paths
    lines += ["", f"Runs: `{shown}/{args.sweep}/<overrides>/` (metrics.jsonl has every stage's "
                  "tokens, FLOPs and seconds).", ""]
    return "\n".join(lines)
