"""Accuracy at equal compute: each run's accuracy against the FLOPs its stages recorded since the
seed model (`cum_flops` of its evaluation rows minus iteration 0's), read at budgets that every
compared group reaches past its first iteration, so that no group is read at its seed model. Between two evaluations the curve is
linear in FLOPs (what a run would have scored had it been evaluated there is unknown; the line is
the simplest reading and stays between the two measured points)."""
from __future__ import annotations

import math
from typing import Optional

from .runs import Run
from .stats import t_interval

BUDGETS = 3  # budgets read, log-spaced over the common range


def curve(run: Run, metric: str = "accuracy") -> list[tuple[float, float]]:
    """(FLOPs spent since iteration 0's evaluation, metric) of each evaluation that recorded both,
    in iteration order. Counting from the seed model's evaluation leaves out the setup, whose cost
    runs from one seed model share (the stage cache trains it once)."""
    points = [(run.flops_through(e["iteration"]), e.get(metric)) for e in run.evaluations()]
    points = [(float(f), float(v)) for f, v in points if f is not None and isinstance(v, (int, float))]
    return [(f - points[0][0], v) for f, v in points]


def at(points: list[tuple[float, float]], budget: float) -> Optional[float]:
    """The curve's value at `budget` FLOPs (linear between evaluations); None outside its range."""
    for (f0, v0), (f1, v1) in zip(points, points[1:]):
        if f0 <= budget <= f1:
            return v0 if f1 == f0 else v0 + (v1 - v0) * (budget - f0) / (f1 - f0)
    return points[0][1] if len(points) == 1 and points[0][0] == budget else None


def _metric(metric, label: str) -> str:
    return metric.get(label, "accuracy") if isinstance(metric, dict) else metric


def common_range(groups: dict[str, list[Run]], metric="accuracy") -> tuple[Optional[tuple[float, float]], str]:
    """((low, high), "") of the FLOPs every run of every group reaches after its first iteration's
    evaluation and before its last; (None, why) when there is no such range."""
    firsts, lasts, why = {}, {}, []
    for label, runs in groups.items():
        for r in runs:
            c = curve(r, _metric(metric, label))
            if len(c) < 2:
                why.append(f"{r.name} ({label}) has {len(c)} evaluation(s) with FLOPs recorded")
                continue
            firsts[(label, r.name)], lasts[(label, r.name)] = c[1][0], c[-1][0]
    if why:
        return None, "; ".join(why) + ": a curve needs the seed model and at least one iteration after it"
    low_key = max(firsts, key=firsts.get)
    high_key = min(lasts, key=lasts.get)
    low, high = firsts[low_key], lasts[high_key]
    if low > high:
        return None, (f"{high_key[1]} ({high_key[0]}) ends at {high:.3g} FLOPs, before {low_key[1]} ({low_key[0]}) "
                      f"has finished its first iteration ({low:.3g} FLOPs)")
    return (low, high), ""


def budgets(low: float, high: float, n: int = BUDGETS) -> list[float]:
    """n budgets from low to high, evenly spaced in log FLOPs (one when the range is a point)."""
    if high <= low * (1 + 1e-9) or n < 2:
        return [low]
    if low <= 0:  # an iteration that recorded no FLOPs: log spacing has no start
        return [low + (high - low) * i / (n - 1) for i in range(n)]
    step = (math.log(high) - math.log(low)) / (n - 1)
    return [math.exp(math.log(low) + i * step) for i in range(n - 1)] + [high]


def equal_compute(groups: dict[str, list[Run]], metric="accuracy",
                  n: int = BUDGETS) -> tuple[list[float], dict[str, list[tuple[float, Optional[float], int]]], str]:
    """(budgets, group -> [(mean, 95% t half-width, seeds)] per budget, why-none). Each seed's
    curve is read at the budget, then averaged over the group's seeds. `metric`: one for every
    group, or group -> metric (SCoRe's acc_t2 next to the others' accuracy)."""
    span, why = common_range(groups, metric)
    if span is None:
        return [], {}, why
    points = budgets(*span, n)
    table = {}
    for label, runs in groups.items():
        cells = []
        for b in points:
            vals = [v for v in (at(curve(r, _metric(metric, label)), b) for r in runs) if v is not None]
            mean, half = t_interval(vals)
            cells.append((mean, half, len(vals)))
        table[label] = cells
    return points, table, ""
