"""STaR vs ReST-EM vs GRPO from the same seed model at (about) equal training compute.

    python scripts/compare_grpo.py --seeds 0 1 2 --output-root outputs/compare          # run + report
    python scripts/compare_grpo.py --seeds 0 --small --output-root /tmp/cmp --jobs 3    # a CPU-sized version
    python scripts/compare_grpo.py --seeds 0 1 2 --iterations 2 --jobs 3             # default budgets, 2 iterations
    python scripts/compare_grpo.py --report-only --output-root outputs/compare          # report finished runs
    python scripts/compare_grpo.py --runs star=outputs/star grpo=outputs/grpo --output-root out   # any runs

Per seed: STaR runs with its budget first; its training FLOPs are the target. ReST-EM's
train.steps and GRPO's steps per iteration are then set from per-token cost estimates so that
their totals land on the target, and the report prints the FLOPs actually spent next to it (the
issue asks for within 10%; a row outside that band is marked). All runs of one seed share one
output root, so they start from the identical seed model (the stage cache).

Compute: the FLOPs every stage records (selfimprove/compute.py: 2N per sampled or reference
token, 6N per trained token, N = parameters), summed over the stages of iterations >= 1 outside
the evaluations (selfimprove.analysis.matched). The seed model and the evaluate stages are the
same for every recipe's comparison point and are not counted. Steps are planned from the token
counts STaR's stages recorded, then corrected by what a first run recorded.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from selfimprove.analysis.matched import iteration_flops, params, report_runs, rows  # noqa: E402
from selfimprove.analysis.runs import load_run  # noqa: E402

RECIPES = ("star", "rest_em", "grpo")
# --small: budgets that run on a shared 2-core CPU in well under an hour per seed (one iteration
# less, fewer problems, no pass@k sampling at evaluation). Measured (seed 0): below what expert
# iteration needs on the tiny model. STaR (400 problems, ~180 kept) fell from 17.7% to 9.0% and
# ReST-EM (100 problems, 43 distinct correct samples, ~86 epochs over them) to 0.3%: fine-tuning
# the seed model on a few easy problems wipes out its 4-digit skill. Use the default budgets
# for a comparison that means something.
SMALL = {
    "common": ["evaluate.num_samples=0", "evaluate.pass_k=[]"],
    "star": ["iterations=2", "generate.num_problems=400", "train.steps=100"],
    "rest_em": ["iterations=2", "generate.num_problems=100"],
    "grpo": ["iterations=2"],
}


def sh(args: list[str], log: Path) -> None:
    with open(log, "a") as f:
        p = subprocess.run(args, stdout=f, stderr=subprocess.STDOUT)
    if p.returncode != 0:
        raise SystemExit(f"failed (exit {p.returncode}): {' '.join(args)}; see {log}")


def run(recipe: str, seed: int, root: Path, extra: list[str], threads: int, suffix: str = "") -> Path:
    name = f"{recipe}_s{seed}{suffix}"
    sh([sys.executable, "-m", "selfimprove.cli", "run", f"recipe={recipe}", f"seed={seed}", f"threads={threads}",
        "tracking.quiet=true", f"output_root={root}", f"run_name={name}", *extra], root / f"{name}.log")
    return root / name


def plan_and_run(seed: int, root: Path, small: bool, threads: int, iterations: int | None = None) -> None:
    common = SMALL["common"] if small else []
    extra = {r: common + (SMALL[r] if small else []) for r in RECIPES}
    if iterations is not None:  # every recipe's default budgets, for this many iterations each
        extra = {r: [o for o in e if not o.startswith("iterations=")] + [f"iterations={iterations}"] for r, e in extra.items()}
    star = run("star", seed, root, extra["star"], threads)
    n = params(star)
    target = sum(iteration_flops(star).values())
    # per-token costs from the counts STaR's stages recorded (tokens, not characters): a sampled
    # sequence's tokens (prompt + completion) and a trained example's tokens
    star_m = {(r["iteration"], r["stage"]): r for r in rows(star)}
    gen, train = star_m[(1, "generate")], star_m[(1, "train")]
    seq = (gen["tokens_prompt"] + gen["tokens_completion"]) / max(gen["samples"], 1)
    batch = load_run(star).config["train"]["batch_size"]  # ReST-EM trains with the same default batch
    per_example = train["tokens_trained"] / max(train["steps"] * batch, 1)
    iters = {r: int(next((o.split("=")[1] for o in extra[r] if o.startswith("iterations=")), 0)) for r in RECIPES}
    # ReST-EM: sampling is fixed by its settings (8 samples a problem); training steps fill the rest of the target
    rest_iters = iters["rest_em"] or 3
    problems = int(next((o.split("=")[1] for o in extra["rest_em"] if o.startswith("generate.num_problems=")), 1000))
    steps = max(10, round((target / rest_iters - 2 * n * problems * 8 * seq) / (6 * n * batch * per_example)))
    # A first run at the estimated steps (`_estimate`), then the reported run with the steps
    # corrected by what the first one measured: the estimate misses what it cannot know beforehand
    # (ReST-EM's samples at T=0.7 run longer than STaR's SFT rows; checkpoint validation; measured
    # 1.11x on seed 0). Sampling does not depend on the steps, so the first iteration's samples
    # come from the stage cache; with a close estimate the whole run does.
    rest = run("rest_em", seed, root, extra["rest_em"] + [f"train.steps={steps}"], threads, "_estimate")
    spent, trained = sum(iteration_flops(rest).values()), sum(iteration_flops(rest, ("train",)).values())
    if abs(spent / target - 1) > 0.05 and trained > 0:
        steps = max(10, round(steps * (trained + target - spent) / trained))
    run("rest_em", seed, root, extra["rest_em"] + [f"train.steps={steps}"], threads)
    # GRPO: 64 completions a step; each token: 2N sampled + 6N trained + 2N reference = 10N, a
    # sequence as long as STaR's sampled ones (its recorded tokens per sample)
    grpo_iters = iters["grpo"] or 4
    per_step = 10 * n * 64 * seq
    steps = max(1, round(target / grpo_iters / per_step))
    grpo = run("grpo", seed, root, extra["grpo"] + [f"grpo.steps={steps}"], threads, "_estimate")
    spent = sum(iteration_flops(grpo).values())  # every GRPO FLOP scales with its steps
    if abs(spent / target - 1) > 0.05:
        steps = max(1, round(steps * target / spent))
    run("grpo", seed, root, extra["grpo"] + [f"grpo.steps={steps}"], threads)


def report(root: Path, seeds: list[int]) -> str:
    runs = {recipe: [root / f"seed{seed}" / f"{recipe}_s{seed}" for seed in seeds] for recipe in RECIPES}
    return report_runs(runs, root)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--output-root", type=Path, default=Path("outputs/compare"))
    ap.add_argument("--small", action="store_true", help="CPU-sized budgets (see SMALL)")
    ap.add_argument("--iterations", type=int, help="iterations of every recipe (default: each recipe's own); "
                                                   "STaR's FLOPs over them are the target")
    ap.add_argument("--jobs", type=int, default=1, help="seeds run in parallel")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per run")
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--runs", nargs="+", metavar="LABEL=RUN_DIR",
                    help="report these finished runs instead (a label given twice = two seeds; the first label "
                         "is the FLOPs reference); writes into --output-root")
    a = ap.parse_args()
    if a.runs:
        runs: dict[str, list[Path]] = {}
        for item in a.runs:
            label, _, path = item.partition("=")
            runs.setdefault(label, []).append(Path(path))
        a.output_root.mkdir(parents=True, exist_ok=True)
        print(report_runs(runs, a.output_root))
        return
    if not a.report_only:
        for s in a.seeds:
            (a.output_root / f"seed{s}").mkdir(parents=True, exist_ok=True)
        with ThreadPoolExecutor(a.jobs) as pool:
            list(pool.map(lambda s: plan_and_run(s, a.output_root / f"seed{s}", a.small, a.threads, a.iterations),
                          a.seeds))
    print(report(a.output_root, a.seeds))


if __name__ == "__main__":
    main()
