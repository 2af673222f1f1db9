"""Which runs `compare --group-by` may average over: runs of one task, evaluated on the same test
problems, whose saved configs differ only where runs of one experiment legitimately differ (the
seed, names, output places, threads, the group-by key). A group is then aggregated per iteration:
mean and 95% t-interval over its seeds."""
from __future__ import annotations

from typing import Optional

from .runs import Run, flatten
from .stats import INTERVAL, t_interval

# Overrides that say where or how a run ran, not what it computed: they never split a group.
WHERE = ("seed=", "output_root=", "run_name=", "sweep_name=", "threads=", "tracking.", "cache=", "hydra.",
         "hydra/", "reconfigure=", "device=", "recipe=", "objective=", "sharding.", "backend.device=")
# The same, as saved config keys (exact keys, or prefixes ending in a dot).
WHERE_KEYS = ("seed", "output_root", "run_name", "sweep_name", "threads", "device", "cache", "reconfigure",
              "objective", "tracking.", "sharding.", "hydra.", "backend.device")
BY = ("recipe", "overrides")  # besides any saved config key


class CompareError(ValueError):
    """Runs that cannot be compared the way asked; the message says what differs."""


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
        flats = [flatten({"task": r.config.get("task"), "evaluate": {k: (r.config.get("evaluate") or {}).get(k)
                                                                     for k in ("split", "max_problems")}})
                 for r in runs if r.test_checksum]
        keys = sorted(k for k in set().union(*flats) if len({repr(f.get(k)) for f in flats}) > 1)
        settings = f" Settings that differ: {', '.join(keys)}." if keys else ""
        raise CompareError(f"these runs were evaluated on different test sets (checksum of the evaluated split: "
                           f"{_listing(tests)}).{settings} Compare runs evaluated on the same problems.")


def differing(run: Run) -> tuple[str, ...]:
    """The run's overrides that change what it computes (seed and output places left out)."""
    return tuple(sorted(o for o in run.overrides if not o.startswith(WHERE)))


def _ignored(key: str, by: Optional[str]) -> bool:
    return key == by or any(key == w or (w.endswith(".") and key.startswith(w)) for w in WHERE_KEYS)


_MISSING = "(not set)"


def config_differences(runs: list[Run], by: Optional[str] = None) -> dict[str, dict[str, list[Run]]]:
    """Saved-config keys whose values differ between the runs -> value -> runs with it (keys that
    may differ within one experiment, and `by`, left out). Runs without a config.yaml are skipped."""
    with_config = [r for r in runs if r.config]
    keys = set().union(*(r.flat_config for r in with_config)) if with_config else set()
    out = {}
    for key in sorted(k for k in keys if not _ignored(k, by)):
        values: dict[str, list[Run]] = {}
        for r in with_config:
            values.setdefault(repr(r.flat_config[key]) if key in r.flat_config else _MISSING, []).append(r)
        if len(values) > 1:
            out[key] = values
    return out


def _describe(diffs: dict[str, dict[str, list[Run]]], limit: int = 6) -> str:
    shown = [f"{key} ({'; '.join(f'{v}: ' + ', '.join(r.name for r in rs) for v, rs in values.items())})"
             for key, values in list(diffs.items())[:limit]]
    more = f" and {len(diffs) - limit} more" if len(diffs) > limit else ""
    return ", ".join(shown) + more


def _label(run: Run, by: str) -> str:
    if by == "recipe":
        return run.recipe
    if by == "overrides":
        return " ".join((run.recipe,) + differing(run))
    value = run.flat_config.get(by, _MISSING)
    return f"{run.recipe} {by}={value}"


def group_runs(runs: list[Run], by: str) -> dict[str, list[Run]]:
    """Runs of one experiment that differ only by seed, keyed by a label. `by=recipe`: one group
    per recipe; `by=overrides`: per recipe and set of overrides; `by=<config key>` (e.g.
    `seed_sft.steps`): per recipe and value of that key in the saved configs. A group whose runs
    differ anywhere else is refused, naming the keys."""
    if by not in BY and not any(by in r.flat_config for r in runs):
        keys = sorted({k for r in runs for k in r.flat_config if not _ignored(k, None)})
        example = ", ".join(keys[:5]) or "seed_sft.steps"
        raise CompareError(f"--group-by {by}: none of these runs has '{by}' in its config.yaml. Use --group-by recipe, "
                           f"--group-by overrides, or a saved config key, e.g. {example}.")
    groups: dict[str, list[Run]] = {}
    for r in runs:
        groups.setdefault(_label(r, by), []).append(r)
    for label, members in groups.items():
        _check_group(label, members, by)
    return groups


def _check_group(label: str, members: list[Run], by: str) -> None:
    diffs = config_differences(members, None if by in BY else by)
    variants = {differing(r) for r in members}
    if diffs or len(variants) > 1:
        what = []
        if diffs:
            what.append(f"their saved configs differ in {_describe(diffs)}")
        if len(variants) > 1:
            what.append("their overrides differ: " + "; ".join(
                f"{r.name}: {' '.join(differing(r)) or '(no overrides)'}" for r in members))
        first = next(iter(diffs), None)
        fix = (f"Use --group-by {first} to make one group per value" if first else
               "Use --group-by overrides to make one group per setting")
        raise CompareError(f"the runs grouped as '{label}' differ by more than the seed, so they are not one "
                           f"experiment: {'; '.join(what)}. {fix}, or compare them separately.")
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
