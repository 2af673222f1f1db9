"""`compare --paired`: every two groups (or runs) compared problem by problem on the same test
problems (paired bootstrap, exact sign test, Holm over the pairs), and, where the two start from
the same seed models, paired by seed (would the gap hold for other seed models?)."""
from __future__ import annotations

from itertools import combinations
from typing import Optional

from ..rundir import read_jsonl
from .groups import CompareError
from .runs import Run
from .stats import holm, paired_comparison, t_interval

OWN_SEED_MODEL = "n/a (own seed model)"


def per_problem(runs: list[Run], iteration: Optional[int]) -> tuple[int, dict[str, float]]:
    """(iteration, problem id -> greedy correctness averaged over the runs' seeds) from eval.jsonl.
    Without `iteration`: the last one every run evaluated."""
    if iteration is None:
        iteration = min(max((e["iteration"] for e in r.evaluations()), default=-1) for r in runs)
    if iteration < 0:
        raise CompareError(f"{', '.join(r.name for r in runs)}: no evaluated iteration to compare. "
                           f"Wait for an evaluation, or leave the run out.")
    per: dict[str, list[float]] = {}
    for r in runs:
        path = r.path / f"iter_{iteration:02d}" / "evaluate" / "eval.jsonl"
        if not path.is_file():
            raise CompareError(f"{r.path} has no {path.relative_to(r.path)}: a paired comparison needs each "
                               f"run's per-problem results at iteration {iteration}. Pick one with --iteration N.")
        greedy = [row for row in read_jsonl(path) if row.get("mode") == "greedy"]
        graded = [row for row in greedy if "correct" in row]
        if not graded:
            raise CompareError(f"{path.relative_to(r.path.parent)}: none of its {len(greedy)} greedy rows says whether "
                               f"the answer is right (no `correct` field: the task has no gold answers), so there is "
                               f"nothing to compare problem by problem. Leave out --paired for these runs.")
        for row in graded:
            per.setdefault(row["prompt_id"], []).append(float(row["correct"]))
    return iteration, {pid: sum(v) / len(v) for pid, v in per.items()}


def paired_rows(units: dict[str, list[Run]], iteration: Optional[int] = None) -> list[dict]:
    """Every pair of groups (or runs) on the same test problems: accuracy difference A - B with a
    paired-bootstrap 95% interval, the exact sign-test p-value and Holm's adjustment over the pairs."""
    results = {label: per_problem(runs, iteration) for label, runs in units.items()}
    rows = []
    for a, b in combinations(units, 2):
        (ia, pa), (ib, pb) = results[a], results[b]
        if set(pa) != set(pb):
            raise CompareError(f"'{a}' and '{b}' were evaluated on different problems ({len(pa)} and {len(pb)}, "
                               f"{len(set(pa) & set(pb))} in common); a paired comparison needs the same test set. "
                               f"Compare runs evaluated on the same split (task and evaluate settings).")
        ids = sorted(pa)
        c = paired_comparison([pa[i] for i in ids], [pb[i] for i in ids])
        by_seed = seed_paired(units[a], units[b], ia, ib)
        rows.append({"a": a, "b": b, "iteration_a": ia, "iteration_b": ib, "problems": c.problems,
                     "accuracy_a": sum(pa.values()) / len(pa), "accuracy_b": sum(pb.values()) / len(pb),
                     "diff": c.diff, "diff_low": c.ci_low, "diff_high": c.ci_high,
                     "a_better": c.a_better, "b_better": c.b_better, "p_sign": c.p_sign, **by_seed})
    for row, p in zip(rows, holm([r["p_sign"] for r in rows])):
        row["p_holm"] = p
    return rows


def seed_pairs(a: list[Run], b: list[Run]) -> list[tuple[Run, Run]]:
    """(run of A, run of B) with the same seed that started from the same seed model (the same
    weights at iteration 0). Runs whose seed model is unknown are not paired."""
    by_seed = {r.seed: r for r in b}
    return [(r, by_seed[r.seed]) for r in a if r.seed in by_seed and r.seed_model
            and r.seed_model == by_seed[r.seed].seed_model]


def seed_paired(a: list[Run], b: list[Run], ia: int, ib: int) -> dict:
    """Mean and 95% t half-width of A - B over the seed pairs of `seed_pairs` (`seed_diff`,
    `seed_diff_ci95`, `seed_pairs`): the problem-level tests treat the seeds as fixed, this one asks
    whether the gap would hold for other seed models. `seed_note` says why there is none."""
    def acc(run: Run, it: int) -> Optional[float]:
        return next((e.get("accuracy") for e in run.evaluations() if e["iteration"] == it), None)

    pairs = [(x, y) for x, y in seed_pairs(a, b) if acc(x, ia) is not None and acc(y, ib) is not None]
    common = {r.seed for r in a} & {r.seed for r in b}
    if not pairs:
        note = OWN_SEED_MODEL if common and all(r.seed_model for r in a + b) else \
            "n/a (no common seed)" if not common else "n/a (seed model unknown)"
        return {"seed_diff": None, "seed_diff_ci95": None, "seed_pairs": 0, "seed_note": note}
    if len(pairs) < 2:  # one seed model says nothing about the spread between seed models
        return {"seed_diff": None, "seed_diff_ci95": None, "seed_pairs": 1, "seed_note": "n/a (1 common seed)"}
    mean, half = t_interval([acc(x, ia) - acc(y, ib) for x, y in pairs])
    return {"seed_diff": mean, "seed_diff_ci95": half, "seed_pairs": len(pairs), "seed_note": ""}
