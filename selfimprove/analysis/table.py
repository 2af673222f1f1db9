"""The table `selfimprove compare` prints for runs shown one by one: a row per run and evaluated
iteration, with the overrides that set the run apart and its cumulative compute, and the file
formats (csv, json, markdown) those rows are written in."""
from __future__ import annotations

import csv
import io
import json
from typing import Optional

from .runs import Run, status

HEADLINE = ("accuracy", "val_accuracy", "pass@1", "maj@4", "pass@4")


def present_metrics(runs: list[Run], metrics: Optional[list[str]] = None) -> list[str]:
    return [m for m in (metrics or HEADLINE) if any(m in e for r in runs for e in r.evaluations())]


def x_columns(runs: list[Run]) -> list[str]:
    """Cumulative compute columns the runs can fill: wall_s always, cum_flops if they report FLOPs."""
    has_flops = any("flops" in row or "cum_flops" in row for r in runs for row in r.rows)
    return ["wall_s"] + (["cum_flops"] if has_flops else [])


def comparison_rows(runs: list[Run], metrics: Optional[list[str]] = None) -> tuple[list[str], list[dict]]:
    """One row per run and evaluated iteration. Returns (metric columns, rows)."""
    common = set.intersection(*(set(r.overrides) for r in runs)) if runs else set()
    present = present_metrics(runs, metrics)
    xs = x_columns(runs)
    table = []
    for run in runs:
        differing = " ".join(o for o in run.overrides if o not in common and not o.startswith(("output_root=",)))
        evals = run.evaluations()
        if not evals:
            table.append({"run": run.name, "recipe": run.recipe, "overrides": differing, "iteration": None,
                          **{m: None for m in present}, **{x: None for x in xs}, "status": status(run)})
        for e in evals:
            it = e["iteration"]
            table.append({"run": run.name, "recipe": run.recipe, "overrides": differing, "iteration": it,
                          **{m: e.get(m) for m in present}, "wall_s": round(run.seconds_through(it), 1),
                          **({"cum_flops": run.flops_through(it)} if "cum_flops" in xs else {}),
                          "status": status(run)})
    return present, table


def render(rows: list[dict], fmt: str) -> str:
    cols = list(rows[0]) if rows else []
    if fmt == "json":
        return json.dumps(rows, indent=2)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=cols)
        writer.writeheader()
        writer.writerows(rows)
        return buf.getvalue()
    if fmt == "markdown":
        cell = lambda v: "" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
        lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        lines += ["| " + " | ".join(cell(r[c]) for c in cols) + " |" for r in rows]
        return "\n".join(lines)
    raise ValueError(f"unknown format '{fmt}': use table, csv, json or markdown")
