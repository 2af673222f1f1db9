"""Regenerate docs/results.md: every recipe and both controls over N seeds, then one page of
mean ± 95% confidence intervals, compute and curves.

    python scripts/results.py --seeds 3                  # the full page (hours on 2 cores)
    python scripts/results.py --profile debug --seeds 2  # the plumbing in minutes (numbers meaningless)
    python scripts/results.py --no-run                   # only rebuild the page from finished runs

Runs go through `selfimprove run -m` with the local parallel launcher
(conf/hydra/launcher/local_parallel.yaml, one torch thread per job), `--jobs` runs at a time,
all under one output root so the stage cache shares finished stages: the seed models of each
seed are trained first (STaR's setup, `iterations=0`), and every recipe with the same setup then
reuses them. Rerunning the script resumes: finished runs say "Nothing to do".

Aggregation is deliberately small and self-contained (`selfimprove compare` has its own): per
recipe and iteration, the mean over seeds and a two-sided 95% t-interval, mean ± t(0.975, n-1)·s/√n;
with one seed there is no interval and the page says "one seed". The gain over `train_longer` is
paired by seed (runs with the same seed share their seed model), with a t-interval on the
per-seed differences.
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CONTROLS = ("train_longer", "gold_sft")
BASELINE = "train_longer"
# the held-out accuracy each recipe reports: (stage, metric)
METRIC = {"score": ("evaluate_turns", "acc_t2")}
DEFAULT_METRIC = ("evaluate", "accuracy")
SETUP_RECIPE = "star"  # its setup (prepare, seed_sft, evaluate) is shared by most recipes
# recipes of another kind, with a page of their own, left out unless --recipes names them:
# easy_to_hard measures length generalization on reversed addition (scripts/e2h_summary.py)
OWN_PAGE = ("easy_to_hard",)


# ----------------------------------------------------------------------------- running
def recipes_available() -> list[str]:
    sys.path.insert(0, str(ROOT))
    from selfimprove.config import available_recipes

    return sorted(available_recipes())


def default_recipes(known: list[str]) -> list[str]:
    """Every recipe and both controls, but not those with a page of their own."""
    return [r for r in known if r not in OWN_PAGE]


def commands(recipes: list[str], seeds: int, jobs: int, root: Path, sweep: str, extra: list[str]) -> list[list[str]]:
    """`selfimprove run -m` invocations: the shared seed models first, then every (recipe, seed)
    in groups of at most `jobs` runs of one seed (a Hydra sweep is a product of value lists).
    Group by group, every seed of a group before the next group: a call cut short (the full page
    takes hours) leaves whole recipes over all seeds, which a `--no-run` page can already show."""
    base = [sys.executable, "-m", "selfimprove.cli", "run", "-m", "hydra/launcher=local_parallel", "threads=1",
            "tracking.quiet=true", f"output_root={root}", *extra]
    # the local launcher starts every job of a sweep at once: at most `jobs` seeds per setup sweep
    cmds = [base + [f"sweep_name={sweep}-setup", f"recipe={SETUP_RECIPE}", "iterations=0",
                    "seed=" + ",".join(str(s) for s in range(first, min(first + jobs, seeds)))]
            for first in range(0, seeds, jobs)]
    for i in range(0, len(recipes), jobs):
        for seed in range(seeds):
            cmds.append(base + [f"sweep_name={sweep}", f"recipe={','.join(recipes[i:i + jobs])}", f"seed={seed}"])
    return cmds


def run_all(cmds: list[list[str]], log: Path) -> list[str]:
    """Run every sweep; a failed one does not stop the others (its finished runs still count, and
    the page lists the runs that did not finish). Returns the failed commands."""
    log.parent.mkdir(parents=True, exist_ok=True)
    failed = []
    with open(log, "a") as f:
        for cmd in cmds:
            shown = " ".join(cmd[2:])
            print(f"[results] {shown}", flush=True)
            f.write(f"\n$ {shown}\n")
            f.flush()
            if subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT).returncode != 0:
                failed.append(shown)
    return failed


def unfinished_runs(sweep_dir: Path) -> list[str]:
    """Run folders under the sweep whose status is not `finished`, with their error if any."""
    out = []
    for info_path in sorted(sweep_dir.glob("*/run.json")):
        info = json.loads(info_path.read_text())
        if info.get("status") != "finished":
            error = f" ({info['error']})" if info.get("error") else ""
            out.append(f"{info_path.parent.name}: {info.get('status')}{error}")
    return out


# ----------------------------------------------------------------------------- reading runs
def finished_runs(sweep_dir: Path):
    """(run folder, recipe, seed) of every finished run under the sweep folder."""
    for info_path in sorted(sweep_dir.glob("*/run.json")):
        info = json.loads(info_path.read_text())
        if info.get("status") == "finished":
            run = info_path.parent
            yield run, info["recipe"], int(yaml.safe_load((run / "config.yaml").read_text())["seed"])


def load_runs(sweep_dir: Path) -> dict[str, dict[int, list[dict]]]:
    """recipe -> seed -> metrics rows, for every finished run under the sweep folder."""
    out: dict[str, dict[int, list[dict]]] = {}
    for run, recipe, seed in finished_runs(sweep_dir):
        if (run / "metrics.jsonl").exists():
            rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
            out.setdefault(recipe, {})[seed] = rows
    return out


def seed_models(sweep_dir: Path) -> dict[tuple[str, int], str]:
    """(recipe, seed) -> sha256 of the seed model's weights (the setup's `seed_sft`), for every
    finished run that has one: the gain over `train_longer` pairs only runs that started from the
    same model (Self-Rewarding's M1 and SCoRe's two-turn model are their own)."""
    out = {}
    for run, recipe, seed in finished_runs(sweep_dir):
        manifest = run / "iter_00" / "seed_sft" / "manifest.json"
        weights = json.loads(manifest.read_text())["files"].get("model/model.safetensors", {}).get("sha256") \
            if manifest.is_file() else None
        if weights:
            out[(recipe, seed)] = weights
    return out


def paired_tables(sweep_dir: Path, recipes: list[str]) -> list[str]:
    """`selfimprove compare --group-by recipe --paired` over the finished runs, one table per test
    set (runs of another task, or evaluated on other problems, are not comparable)."""
    sys.path.insert(0, str(ROOT))
    from selfimprove.compare import load_run
    from selfimprove.compare_view import PAIRED_CAPTION, display_paired, markdown
    from selfimprove.seeds import CompareError, group_runs, paired_rows

    by_test: dict[tuple, list] = {}
    for info_path in sorted(sweep_dir.glob("*/run.json")):
        run = load_run(info_path.parent)
        if run.info.get("status") == "finished" and run.recipe in recipes and any(
                e.get("stage") == "evaluate" for e in run.evaluations()):
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


def curve(recipe: str, rows: list[dict]) -> list[dict]:
    """One point per evaluation: iteration, accuracy, cumulative FLOPs and seconds so far."""
    stage, key = METRIC.get(recipe, DEFAULT_METRIC)
    return [{"iteration": r["iteration"], "accuracy": r[key], "cum_flops": r.get("cum_flops"),
             "cum_seconds": r.get("cum_seconds")} for r in rows if r["stage"] == stage and key in r]


# ----------------------------------------------------------------------------- statistics
def t_interval(xs: list[float]) -> tuple[float, float | None]:
    """(mean, half-width of the two-sided 95% t-interval); None for the half-width with one value."""
    n = len(xs)
    m = sum(xs) / n
    if n < 2:
        return m, None
    from scipy.stats import t

    s = math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1))
    return m, t.ppf(0.975, n - 1) * s / math.sqrt(n)


def pct(m: float, h: float | None) -> str:
    return f"{100 * m:.1f}" + (f" ± {100 * h:.1f}" if h is not None else " (one seed)")


def sci(x: float | None) -> str:
    return "-" if x is None else f"{x:.2e}"


def summarize(runs: dict[str, dict[int, list[dict]]]) -> dict:
    """Per recipe: per-iteration curves over seeds and the final-iteration figures."""
    out = {}
    for recipe, by_seed in runs.items():
        curves = {seed: curve(recipe, rows) for seed, rows in by_seed.items()}
        curves = {s: c for s, c in curves.items() if c}
        if not curves:
            continue
        iterations = sorted({p["iteration"] for c in curves.values() for p in c})
        per_iter = []
        for it in iterations:
            pts = [p for c in curves.values() for p in c if p["iteration"] == it]
            flops = [p["cum_flops"] for p in pts if p["cum_flops"] is not None]
            per_iter.append({"iteration": it, "n": len(pts), "acc": t_interval([p["accuracy"] for p in pts]),
                             "cum_flops": sum(flops) / len(flops) if flops else None,
                             "cum_seconds": sum(p["cum_seconds"] or 0 for p in pts) / len(pts)})
        finals = {s: c[-1] for s, c in curves.items()}
        out[recipe] = {"curves": curves, "per_iter": per_iter, "finals": finals, "seeds": sorted(curves),
                       "final": t_interval([f["accuracy"] for f in finals.values()]),
                       "start": t_interval([c[0]["accuracy"] for c in curves.values()]),
                       "flops": t_interval([f["cum_flops"] or 0 for f in finals.values()])[0],
                       "seconds": t_interval([f["cum_seconds"] or 0 for f in finals.values()])[0]}
    return out


def gain_over(summary: dict, recipe: str, baseline: str = BASELINE, models: dict | None = None) -> str:
    """Final accuracy minus the baseline's, paired by seed: only seeds whose runs started from the
    same seed model (`models`: (recipe, seed) -> weights hash; without it, every common seed)."""
    if baseline not in summary or recipe == baseline:
        return "-"
    a, b = summary[recipe]["finals"], summary[baseline]["finals"]
    common = sorted(set(a) & set(b))
    if models is not None:
        common = [s for s in common if models.get((recipe, s)) and models.get((recipe, s)) == models.get((baseline, s))]
        if not common:
            return "n/a (own seed model)"
    diffs = [a[s]["accuracy"] - b[s]["accuracy"] for s in common]
    if not diffs:
        return "-"
    m, h = t_interval(diffs)
    return f"{100 * m:+.1f}" + (f" ± {100 * h:.1f}" if h is not None else " (one seed)")


def at_budget(summary: dict, recipe: str, budget: float) -> str:
    """Accuracy of the last evaluation within `budget` cumulative FLOPs, per seed, then mean ± CI."""
    accs = []
    for c in summary[recipe]["curves"].values():
        within = [p for p in c if p["cum_flops"] is not None and p["cum_flops"] <= budget]
        if within:
            accs.append(within[-1]["accuracy"])
    return pct(*t_interval(accs)) if len(accs) == len(summary[recipe]["curves"]) else "- (over budget at start)"


# ----------------------------------------------------------------------------- the page
def plots(summary: dict, out_dir: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    for xkey, xlabel, fname in (("iteration", "iteration", "results_iterations.png"),
                                ("cum_flops", "cumulative FLOPs (estimate)", "results_flops.png")):
        fig, ax = plt.subplots(figsize=(8.5, 4.5))
        for recipe, s in sorted(summary.items()):
            pts = [p for p in s["per_iter"] if p[xkey] is not None]
            if not pts:
                continue
            xs = [p[xkey] for p in pts]
            ms = [100 * p["acc"][0] for p in pts]
            hs = [100 * (p["acc"][1] or 0) for p in pts]
            style = "--" if recipe in CONTROLS else "-"
            ax.plot(xs, ms, style, marker="o", label=recipe)
            # an accuracy lies in [0, 100]: a t-interval over 3 widely spread seeds reaches past it
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


def page(summary: dict, args, images: list[str], unfinished: list[str] = (), models: dict | None = None,
         paired: list[str] = (), more: list[str] = ()) -> str:
    seeds = sorted({s for v in summary.values() for s in v["seeds"]})
    with_flops = [v["flops"] for v in summary.values() if v["flops"]]
    budget = min(with_flops) if with_flops else None
    lines = [
        "# Results",
        "",
        # the command that wrote this page (a --no-run page is built from runs made beforehand)
        f"{'Built from finished runs' if args.no_run else 'Regenerated'} by `python scripts/results.py"
        + (" --no-run" if args.no_run else f" --seeds {args.seeds}")
        + (f" --profile {args.profile}" if args.profile != "default" else "")
        + (f" --recipes {args.recipes}" if args.recipes else "")
        + (f" --sweep {args.sweep}" if args.sweep != "results" else "") + f"` on {time.strftime('%Y-%m-%d')}"
        + (" (a subset of the recipes: the others have no row here)." if args.recipes else "."),
        f"Seeds: {', '.join(map(str, seeds))}. Each seed is a separate run of the whole recipe, seed model "
        "included; runs with the same seed share their seed model through the stage cache.",
        "",
        "Accuracy: greedy accuracy on the held-out test split (SCoRe: turn-2 accuracy), in percent. "
        "Intervals: two-sided 95% t-interval over seeds, mean ± t(0.975, n-1)·s/√n; a figure from one "
        "seed says so. The gain over `train_longer` is paired by seed. FLOPs: the estimate every stage "
        "records (2·N per sampled token, 6·N per trained token, N = parameters), summed over the run, "
        "setup and evaluations included; wall time likewise, with the runs sharing 2 CPU cores "
        f"(`--jobs {args.jobs}` at a time), so times are comparable only within this page.",
        "",
    ]
    if args.profile != "default":
        lines += [f"**profile={args.profile}: every budget is shrunk; these numbers test the plumbing and mean "
                  "nothing about the methods.**", ""]
    lines += ["## Final iteration", "",
              "| recipe | seeds | iteration 0 | final | gain over train_longer | "
              + (f"at {sci(budget)} FLOPs | " if budget else "") + "FLOPs | wall time |",
              "|---|---|---|---|---|" + ("---|" if budget else "") + "---|---|"]
    for recipe in sorted(summary, key=lambda r: (r in CONTROLS, r)):
        s = summary[recipe]
        lines.append(f"| `{recipe}`{' (control)' if recipe in CONTROLS else ''} | {len(s['seeds'])} | "
                     f"{pct(*s['start'])} | {pct(*s['final'])} | {gain_over(summary, recipe, models=models)} | "
                     + (f"{at_budget(summary, recipe, budget)} | " if budget else "")
                     + f"{sci(s['flops'])} | {s['seconds'] / 60:.1f} min |")
    if budget:
        lines += ["", f"Equal compute: each recipe's accuracy at its last evaluation within {sci(budget)} FLOPs, "
                      "the smallest total of any recipe here."]
    lines += ["", "## Per iteration", ""]
    for recipe in sorted(summary, key=lambda r: (r in CONTROLS, r)):
        s = summary[recipe]
        lines.append(f"- `{recipe}`: " + " → ".join(pct(*p["acc"]) for p in s["per_iter"]))
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 per recipe (default 3)")
    ap.add_argument("--profile", default="default", help="default | debug (debug: minutes, meaningless numbers)")
    ap.add_argument("--recipes", default="", help="comma-separated subset (default: every recipe and both controls, "
                                                  f"except {', '.join(OWN_PAGE)}, which has its own page)")
    ap.add_argument("--jobs", type=int, default=2, help="runs at a time (one torch thread each; default 2)")
    ap.add_argument("--output-root", default="outputs/results", help="where the runs go (default outputs/results)")
    ap.add_argument("--sweep", default="results", help="sweep folder name under the output root")
    ap.add_argument("--out", default="docs/results.md", help="the page (images next to it)")
    ap.add_argument("--no-run", action="store_true", help="only rebuild the page from finished runs")
    args = ap.parse_args(argv)
    if args.seeds < 1 or args.jobs < 1:
        ap.error("--seeds and --jobs must be >= 1")
    known = recipes_available()
    recipes = [r for r in args.recipes.split(",") if r] or default_recipes(known)
    unknown = [r for r in recipes if r not in known]
    if unknown:
        ap.error(f"unknown recipe(s) {', '.join(unknown)}; available: {', '.join(known)}")
    root = (ROOT / args.output_root).resolve() if not Path(args.output_root).is_absolute() else Path(args.output_root)
    extra = [f"profile={args.profile}"] if args.profile != "default" else []
    failed = []
    if not args.no_run:
        failed = run_all(commands(recipes, args.seeds, args.jobs, root, args.sweep, extra), root / f"{args.sweep}.log")
    runs = {r: v for r, v in load_runs(root / args.sweep).items() if r in recipes}
    if not runs:
        raise SystemExit(f"results: no finished run under {root / args.sweep}; run without --no-run first.")
    summary = summarize(runs)
    out = (ROOT / args.out) if not Path(args.out).is_absolute() else Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    images = plots(summary, out.parent)
    out.write_text(page(summary, args, images, unfinished_runs(root / args.sweep), seed_models(root / args.sweep),
                        paired_tables(root / args.sweep, recipes),
                        sorted(str(p.relative_to(out.parent)) for p in out.parent.glob("*/results.md"))))
    print(f"[results] wrote {out} ({len(summary)} recipes, images {', '.join(images)})")
    if failed:
        print(f"[results] {len(failed)} sweep(s) failed; see {root / (args.sweep + '.log')} and rerun to resume:\n  "
              + "\n  ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
