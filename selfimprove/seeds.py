"""Seeds and intervals for `selfimprove compare`: check that runs are comparable (same task, same
test problems), group runs that differ only by seed, aggregate them per iteration (mean and
95% t-interval), and compare two methods problem by problem on the same test set."""
from __future__ import annotations

from itertools import combinations
from typing import Optional

from .compare import Run
from .rundir import read_jsonl
from .stats import INTERVAL, holm, paired_comparison, t_interval

# Overrides that say where or how a run ran, not what it computed: they never split a group.
WHERE = ("seed=", "output_root=", "run_name=", "sweep_name=", "threads=", "tracking.", "cache=", "hydra.",
         "hydra/", "reconfigure=", "device=", "recipe=")


class CompareError(ValueError):
    """Runs that cannot be compared the way asked; the message says what differs."""


def _flat(d, prefix="") -> dict:
    out = {}
    for k, v in (d or {}).items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _listing(by: dict) -> str:
    return "; ".join(f"{key}: {', '.join(r.name for r in runs)}" for key, runs in by.items())


def check_comparable(runs: list[Run]) -> None:
    """Refuse runs of different tasks or evaluated on different test problems (runs that do not
    say, e.g. hand-made folders without config.yaml, are not checked)."""
    tasks: dict[str, list[Run]] = {}
    for r in runs:
        if r.task_name:
            tasks.setdefault(r.task_name, []).append(r)
    if len(tasks) > 1:
        raise CompareError(f"these runs use different tasks ({_listing(tasks)}), so their accuracies are not "
                           f"comparable. Compare the runs of one task at a time.")
    tests: dict[str, list[Run]] = {}
    for r in runs:
        if r.test_checksum:
            tests.setdefault(r.test_checksum[:12], []).append(r)
    if len(tests) > 1:
        flats = [_flat({"task": r.config.get("task"), "evaluate": {k: (r.config.get("evaluate") or {}).get(k)
                                                                   for k in ("split", "max_problems")}})
                 for r in runs if r.test_checksum]
        keys = sorted(k for k in set().union(*flats) if len({repr(f.get(k)) for f in flats}) > 1)
        settings = f" Settings that differ: {', '.join(keys)}." if keys else ""
        raise CompareError(f"these runs were evaluated on different test sets (checksum of the evaluated split: "
                           f"{_listing(tests)}).{settings} Compare runs evaluated on the same problems.")


def differing(run: Run) -> tuple[str, ...]:
    """The run's overrides that change what it computes (seed and output places left out)."""
    return tuple(sorted(o for o in run.overrides if not o.startswith(WHERE)))


def group_runs(runs: list[Run], by: str) -> dict[str, list[Run]]:
    """Runs that differ only by seed, keyed by a label. `by=recipe`: one group per recipe (its runs
    must then differ only by seed); `by=overrides`: one group per recipe and set of overrides."""
    if by not in ("recipe", "overrides"):
        raise CompareError(f"--group-by {by}: use --group-by recipe or --group-by overrides.")
    groups: dict[str, list[Run]] = {}
    for r in runs:
        label = r.recipe if by == "recipe" else " ".join((r.recipe,) + differing(r))
        groups.setdefault(label, []).append(r)
    for label, members in groups.items():
        variants = {differing(r) for r in members}
        if len(variants) > 1:
            raise CompareError(
                f"the runs grouped as '{label}' differ by more than the seed: "
                + "; ".join(f"{r.name}: {' '.join(differing(r)) or '(no overrides)'}" for r in members)
                + ". Use --group-by overrides to make one group per setting.")
        seeds: dict = {}
        for r in members:
            seeds.setdefault(r.seed, []).append(r)
        same = {s: rs for s, rs in seeds.items() if len(rs) > 1}
        if same:
            raise CompareError(f"group '{label}' holds runs with the same seed ({_listing(same)}): the same run "
                               f"twice? Pass each seed's run once.")
        if len(members) < 2:
            raise CompareError(
                f"group '{label}' has a single seed (run {members[0].name}), and a 95% interval over seeds needs "
                f"at least 2. Run more seeds, e.g. `selfimprove run -m recipe={members[0].recipe} seed=0,1,2`, "
                f"or leave out --group-by to show the runs one by one.")
    return groups


def group_rows(groups: dict[str, list[Run]], metrics: list[str], x_columns: list[str]) -> list[dict]:
    """One row per group and iteration: `seeds` (how many runs evaluated that iteration), the mean
    of each metric with its 95% t-interval (`_ci95` half-width, `_low`, `_high`), and the mean of
    the x columns (wall seconds, cumulative FLOPs)."""
    table = []
    for label, runs in groups.items():
        for it in sorted({e["iteration"] for r in runs for e in r.evaluations()}):
            evals = [(r, e) for r in runs for e in r.evaluations() if e["iteration"] == it]
            row = {"group": label, "seeds": len(evals), "iteration": it}
            for m in metrics:
                vals = [e[m] for _, e in evals if isinstance(e.get(m), (int, float))]
                mean, half = t_interval(vals) if vals else (None, None)
                row.update({m: mean, f"{m}_ci95": half, f"{m}_low": None if half is None else mean - half,
                            f"{m}_high": None if half is None else mean + half})
            for x in x_columns:
                xs = [r.x_at(it, x) for r, _ in evals]
                row[x] = sum(xs) / len(xs) if xs and None not in xs else None
            row["interval"] = INTERVAL
            table.append(row)
    return table


def per_problem(runs: list[Run], iteration: Optional[int]) -> tuple[int, dict[str, float]]:
    """(iteration, problem id -> greedy correctness averaged over the runs' seeds) from eval.jsonl.
    Without `iteration`: the last one every run evaluated."""
    if iteration is None:
        iteration = min(max((e["iteration"] for e in r.evaluations()), default=-1) for r in runs)
    per: dict[str, list[float]] = {}
    for r in runs:
        path = r.path / f"iter_{iteration:02d}" / "evaluate" / "eval.jsonl"
        if not path.is_file():
            raise CompareError(f"{r.path} has no {path.relative_to(r.path)}: a paired comparison needs each "
                               f"run's per-problem results at iteration {iteration}. Pick one with --iteration N.")
        for row in read_jsonl(path):
            if row.get("mode") == "greedy" and "correct" in row:
                per.setdefault(row["prompt_id"], []).append(float(row["correct"]))
    return iteration, {pid: sum(v) / len(v) for pid, v in per.items()}


def paired_rows(units: dict[str, list[Run]], iteration: Optional[int] = None) -> list[dict]:
    """Every pair of groups (or runs) on the same test problems: accuracy difference A - B with a
    paired-bootstrap 95% interval, the exact sign-test p-value and Holm's adjustment over the pairs."""
    results = {label: per_problem(runs, iteration) for label, runs in units.items()}
    rows = []
    for a, b in combinations(units, 2):
        seed_diff, seed_half = _seed_paired(units[a], units[b], results[a][0], results[b][0])
        (ia, pa), (ib, pb) = results[a], results[b]
        if set(pa) != set(pb):
            raise CompareError(f"'{a}' and '{b}' were evaluated on different problems ({len(pa)} and {len(pb)}, "
                               f"{len(set(pa) & set(pb))} in common); a paired comparison needs the same test set.")
        ids = sorted(pa)
        c = paired_comparison([pa[i] for i in ids], [pb[i] for i in ids])
        rows.append({"a": a, "b": b, "iteration_a": ia, "iteration_b": ib, "problems": c.problems,
                     "accuracy_a": sum(pa.values()) / len(pa), "accuracy_b": sum(pb.values()) / len(pb),
                     "diff": c.diff, "diff_low": c.ci_low, "diff_high": c.ci_high,
                     "a_better": c.a_better, "b_better": c.b_better, "p_sign": c.p_sign,
                     "seed_diff": seed_diff, "seed_diff_ci95": seed_half})
    for row, p in zip(rows, holm([r["p_sign"] for r in rows])):
        row["p_holm"] = p
    return rows


def _seed_paired(a: list[Run], b: list[Run], ia: int, ib: int) -> tuple[Optional[float], Optional[float]]:
    """Mean and 95% t half-width of A - B paired by seed (same seed, same seed model), when both
    groups ran the same >= 2 seeds: the problem-level tests above treat the seeds as fixed, this
    one asks whether the gap would hold for other seed models."""
    acc = lambda runs, it: {r.seed: next((e.get("accuracy") for e in r.evaluations()  # noqa: E731
                                          if e["iteration"] == it), None) for r in runs}
    xa, xb = acc(a, ia), acc(b, ib)
    if len(xa) < 2 or set(xa) != set(xb) or None in xa.values() or None in xb.values():
        return None, None
    return t_interval([xa[s] - xb[s] for s in sorted(xa)])
