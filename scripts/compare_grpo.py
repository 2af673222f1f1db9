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

Compute (FLOPs ~ 2N per token through a forward pass, 6N per token through forward + backward;
N = the seed model's parameter count; the tiny model's tokenizer is per character, so a token is
a character plus BOS/EOS): generate and rationalize samples, 2N x (prompt + completion) per
sample; SFT, 6N x steps x batch x tokens per example; ReST-EM's validation at each checkpoint,
2N x val problems x (prompt + completion); GRPO, its stage's tokens_prompt/tokens_completion
(2N), tokens_trained (6N) and tokens_reference (2N, the KL term's reference forward). The seed
model and the evaluate stages are the same for every recipe's comparison point and are not
counted. Stored samples are cut after the answer line, so sampled tokens are a slight undercount
for STaR and ReST-EM (GRPO counts every sampled token).
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

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


def rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []


def params(run_dir: Path) -> int:
    from safetensors import safe_open

    with safe_open(str(run_dir / "iter_00/seed_sft/model/model.safetensors"), "pt") as f:
        return sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())


def iteration_flops(run_dir: Path, n: int, stages: tuple[str, ...] | None = None) -> dict[int, float]:
    """Training-side FLOPs of each iteration >= 1 (see the module docstring); `stages`: only theirs."""
    out: dict[int, float] = {}
    metrics = {(r["iteration"], r["stage"]): r for r in rows(run_dir / "metrics.jsonl")}
    evaluate_chars = {i: r.get("mean_chars", 48) for (i, s), r in metrics.items() if s == "evaluate"}
    import yaml

    saved = yaml.safe_load((run_dir / "config.yaml").read_text())  # a run holds only its own stage sections
    for (it, stage), m in metrics.items():
        if it == 0 or (stages is not None and stage not in stages):
            continue
        d, f = run_dir / f"iter_{it:02d}" / stage, 0.0
        if stage == "generate":
            f = 2 * n * sum(len(r["prompt"]) + len(r["text"]) + 2 for r in rows(d / "samples.jsonl"))
        elif stage == "rationalize":
            f = 2 * n * sum(len(r["hinted_prompt"]) + len(r["text"]) + 2 for r in rows(d / "rationalized.jsonl"))
        elif stage == "train":
            f = 6 * n * m["steps"] * saved[stage]["batch_size"] * (m.get("chars_per_example", 60) + 2)
            if "val_reward" in m:  # ReST-EM's checkpoint selection: greedy on val at each checkpoint
                checks = len(json.loads((d / "val_history.json").read_text())) if (d / "val_history.json").exists() \
                    else math.ceil(m["steps"] / 50)
                f += 2 * n * checks * 100 * (20 + evaluate_chars.get(it - 1, 48))
        elif stage == "grpo":
            f = n * (2 * (m["tokens_prompt"] + m["tokens_completion"]) + 6 * m["tokens_trained"]
                     + 2 * m.get("tokens_reference", 0))
        out[it] = out.get(it, 0.0) + f
    return out


def curve(run_dir: Path, n: int) -> list[tuple[float, float]]:
    """(cumulative training FLOPs, held-out greedy accuracy) per iteration, from the seed model on."""
    acc = {r["iteration"]: r["accuracy"] for r in rows(run_dir / "metrics.jsonl") if r["stage"] == "evaluate"}
    fl, total, out = iteration_flops(run_dir, n), 0.0, []
    for it in sorted(acc):
        total += fl.get(it, 0.0)
        out.append((total, acc[it]))
    return out


def ci95(xs: list[float]) -> tuple[float, float]:
    """Mean and half-width of a t-based 95% interval (0 for one value: one seed has no interval)."""
    if len(xs) < 2:
        return xs[0], float("nan")
    from scipy import stats

    return statistics.mean(xs), stats.t.ppf(0.975, len(xs) - 1) * statistics.stdev(xs) / math.sqrt(len(xs))


def plan_and_run(seed: int, root: Path, small: bool, threads: int, iterations: int | None = None) -> None:
    common = SMALL["common"] if small else []
    extra = {r: common + (SMALL[r] if small else []) for r in RECIPES}
    if iterations is not None:  # every recipe's default budgets, for this many iterations each
        extra = {r: [o for o in e if not o.startswith("iterations=")] + [f"iterations={iterations}"] for r, e in extra.items()}
    star = run("star", seed, root, extra["star"], threads)
    n = params(star)
    target = sum(iteration_flops(star, n).values())
    star_m = {(r["iteration"], r["stage"]): r for r in rows(star / "metrics.jsonl")}
    chars = star_m[(1, "train")].get("chars_per_example", 60)
    iters = {r: int(next((o.split("=")[1] for o in extra[r] if o.startswith("iterations=")), 0)) for r in RECIPES}
    # ReST-EM: sampling is fixed by its settings; training steps fill the rest of the target
    rest_iters = iters["rest_em"] or 3
    problems = int(next((o.split("=")[1] for o in extra["rest_em"] if o.startswith("generate.num_problems=")), 1000))
    sample_tokens = problems * 8 * (chars + 2)
    steps = max(10, round((target / rest_iters - 2 * n * sample_tokens) / (6 * n * 32 * chars)))
    # A first run at the estimated steps (`_estimate`), then the reported run with the steps
    # corrected by what the first one measured: the estimate misses what it cannot know beforehand
    # (ReST-EM's samples at T=0.7 run longer than STaR's SFT rows; checkpoint validation; measured
    # 1.11x on seed 0). Sampling does not depend on the steps, so the first iteration's samples
    # come from the stage cache; with a close estimate the whole run does.
    rest = run("rest_em", seed, root, extra["rest_em"] + [f"train.steps={steps}"], threads, "_estimate")
    spent, trained = sum(iteration_flops(rest, n).values()), sum(iteration_flops(rest, n, ("train",)).values())
    if abs(spent / target - 1) > 0.05 and trained > 0:
        steps = max(10, round(steps * (trained + target - spent) / trained))
    run("rest_em", seed, root, extra["rest_em"] + [f"train.steps={steps}"], threads)
    # GRPO: 64 completions a step; each token: 2N sampled + 6N trained + 2N reference = 10N. A
    # sequence is about as long as STaR's samples (prompt + completion); the SFT examples' length
    # (chars_per_example) underestimated it by 15% in our --small run
    grpo_iters = iters["grpo"] or 4
    samples = rows(star / "iter_01/generate/samples.jsonl")
    seq = statistics.mean(len(r["prompt"]) + len(r["text"]) + 2 for r in samples) if samples else chars + 2
    per_step = 10 * n * 64 * seq
    steps = max(1, round(target / grpo_iters / per_step))
    grpo = run("grpo", seed, root, extra["grpo"] + [f"grpo.steps={steps}"], threads, "_estimate")
    spent = sum(iteration_flops(grpo, n).values())  # every GRPO FLOP scales with its steps
    if abs(spent / target - 1) > 0.05:
        steps = max(1, round(steps * target / spent))
    run("grpo", seed, root, extra["grpo"] + [f"grpo.steps={steps}"], threads)


def seed_table(runs: dict[str, list[Path]], table: dict[str, list[tuple[float, float]]]) -> list[str]:
    """One row per run: final accuracy and training FLOPs (the FLOPs match is per seed, not only on average)."""
    out = ["| recipe | run | final accuracy | training FLOPs |", "|---|---|---|---|"]
    for label, vals in table.items():
        done = [d for d in runs[label] if (d / "metrics.jsonl").exists()]
        out += [f"| {label} | {d.name} | {100 * a:.1f}% | {f:.3g} |" for d, (a, f) in zip(done, vals)]
    return out


def paired_lines(runs: dict[str, list[Path]], first: str | None) -> list[str]:
    """The first label against each other one, at each run's last iteration, with the statistics
    of `selfimprove compare --paired` (its `paired_rows`): paired by seed (would the gap hold for
    other seed models?) and problem by problem (paired bootstrap, exact sign test, Holm)."""
    from selfimprove.compare import load_run
    from selfimprove.seeds import paired_rows

    units = {label: [load_run(d) for d in dirs if (d / "metrics.jsonl").exists()] for label, dirs in runs.items()}
    units = {label: rs for label, rs in units.items() if rs}
    if first not in units or len(units) < 2:
        return []
    out = [f"| {first} minus | problems | paired by seed (mean ± 95% t) | problem by problem (diff, 95% bootstrap) "
           "| problems better / worse | sign test p (Holm over all pairs) |", "|---|---|---|---|---|---|"]
    for r in paired_rows(units):
        if first not in (r["a"], r["b"]):
            continue
        sign = 1 if r["a"] == first else -1  # rows are A - B in the labels' order: turn to first - other
        other = r["b"] if sign == 1 else r["a"]
        better, worse = (r["a_better"], r["b_better"])[::sign]
        low, high = sorted((sign * r["diff_low"], sign * r["diff_high"]))
        by_seed = "(needs >= 2 common seeds)" if r["seed_diff"] is None else \
            f"{100 * sign * r['seed_diff']:+.1f} ± {100 * r['seed_diff_ci95']:.1f}"
        out.append(f"| {other} | {r['problems']} | {by_seed} | {100 * sign * r['diff']:+.1f} [{100 * low:+.1f}, "
                   f"{100 * high:+.1f}] | {better} / {worse} | {r['p_sign']:.2g} ({r['p_holm']:.2g}) |")
    return out


def report(root: Path, seeds: list[int]) -> str:
    runs = {recipe: [root / f"seed{seed}" / f"{recipe}_s{seed}" for seed in seeds] for recipe in RECIPES}
    return report_runs(runs, root)


def report_runs(runs: dict[str, list[Path]], root: Path) -> str:
    """Table and plot for finished runs: label -> its run folders (one per seed); the first
    label is the FLOPs reference."""
    table, curves = {}, {}
    for label, dirs in runs.items():
        for d in dirs:
            if not (d / "metrics.jsonl").exists():
                continue
            c = curve(d, params(d))
            curves.setdefault(label, []).append(c)
            table.setdefault(label, []).append((c[-1][1], c[-1][0]))
    first = next(iter(table), None)
    lines = ["| recipe | seeds | final accuracy (mean ± 95% CI) | training FLOPs (mean) | vs "
             f"{first} |", "|---|---|---|---|---|"]
    star_flops = statistics.mean(f for _, f in table[first]) if first else 1.0
    for recipe, vals in table.items():
        mean, half = ci95([a for a, _ in vals])
        flops = statistics.mean(f for _, f in vals)
        ratio = flops / star_flops
        mark = "" if abs(ratio - 1) <= 0.1 else " (outside ±10%)"
        ci = f"± {100 * half:.1f}" if not math.isnan(half) else "(one seed: no interval)"
        lines.append(f"| {recipe} | {len(vals)} | {100 * mean:.1f}% {ci} | {flops:.3g} | {ratio:.2f}x{mark} |")
    text = "\n".join(lines + [""] + seed_table(runs, table) + [""] + paired_lines(runs, first))
    (root / "comparison.md").write_text(text + "\n")
    (root / "comparison.json").write_text(json.dumps({"curves": curves, "runs": {k: [str(d) for d in v] for k, v in runs.items()}}, indent=1))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        for i, (recipe, cs) in enumerate(curves.items()):
            for j, c in enumerate(cs):
                ax.plot([x for x, _ in c], [100 * y for _, y in c], marker="o", color=f"C{i}", alpha=0.8,
                        label=recipe if j == 0 else None)
        seeds = sorted({len(cs) for cs in curves.values()})
        ax.set_title(f"{'one seed' if seeds == [1] else 'seeds per recipe: ' + '/'.join(map(str, seeds))}; "
                     "each line is one run", fontsize=9)
        ax.set_xlabel("cumulative training FLOPs (from the seed model)")
        ax.set_ylabel("held-out greedy accuracy (%)")
        ax.legend()
        fig.tight_layout()
        fig.savefig(root / "comparison.png", dpi=120)
    except ImportError:
        pass
    return text


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
