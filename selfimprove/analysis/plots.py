"""`selfimprove compare --plot` and `--heatmap`: accuracy curves (one line per run, or per group of
seeds with its 95% band) and accuracy by length x round for per-length evaluations."""
from __future__ import annotations

from typing import Optional

from .runs import NotARunError, Run
from .stats import INTERVAL, t_interval

X_LABELS = {"iteration": "iteration", "wall_s": "cumulative wall seconds", "cum_flops": "cumulative FLOPs"}


def plot(runs: list[Run], path: str, metric: str = "accuracy", x: str = "iteration",
         groups: Optional[dict[str, list[Run]]] = None) -> int:
    """One line per run, or per group of seeds: its mean, with a band for the 95% t-interval
    (the x of a group's point is its seeds' mean x). Returns how many bands it drew."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator


    fig, ax = plt.subplots(figsize=(6, 4))
    bands = 0
    for label, members in (groups or {f"{r.name} ({r.recipe})": [r] for r in runs}).items():
        pts = []
        for it in sorted({e["iteration"] for r in members for e in r.evaluations()}):
            at = [(r.x_at(it, x), e[metric]) for r in members for e in r.evaluations()
                  if e["iteration"] == it and e.get(metric) is not None]
            if at and all(xv is not None for xv, _ in at):
                mean, half = t_interval([v for _, v in at])
                pts.append((sum(xv for xv, _ in at) / len(at), mean, half or 0.0))
        if pts:
            xs, ys, hs = zip(*pts)
            line, = ax.plot(xs, ys, marker="o", label=label + (f" (n={len(members)})" if groups else ""))
            if groups:
                lo, hi = [y - h for y, h in zip(ys, hs)], [y + h for y, h in zip(ys, hs)]
                if all(0 <= y <= 1 for y in ys):  # a fraction: draw the band within [0, 1] (tables keep it whole)
                    lo, hi = [max(v, 0.0) for v in lo], [min(v, 1.0) for v in hi]
                ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
                bands += 1
    if x == "iteration":
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(X_LABELS[x])
    ax.set_ylabel(f"held-out {metric}")
    if groups:
        ax.set_title(f"bands: {INTERVAL}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return bands


def length_grid(run: Run) -> tuple[list[int], list[int], list[list[Optional[float]]]]:
    """Accuracy by difficulty (length) x iteration from a run's per-length evaluations
    (`accuracy_d<N>` of evaluate_lengths rows, else of evaluate rows): (iterations, lengths, grid)."""
    rows = [r for r in run.rows if r.get("stage") == "evaluate_lengths"] or run.evaluations()
    by_it: dict[int, dict[int, float]] = {}
    for r in rows:
        cells = {int(k[len("accuracy_d"):]): v for k, v in r.items() if k.startswith("accuracy_d") and k[10:].isdigit()}
        by_it.setdefault(r["iteration"], {}).update(cells)
    its = sorted(by_it)
    lengths = sorted({n for cells in by_it.values() for n in cells})
    return its, lengths, [[by_it[i].get(n) for n in lengths] for i in its]


def heatmap(runs: list[Run], path: str) -> None:
    """One panel per run: accuracy (colour, with the value written in each cell) by length x round."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    grids = [(run, *length_grid(run)) for run in runs]
    grids = [g for g in grids if g[2]]
    if not grids:
        raise NotARunError("none of these runs has per-length accuracies (accuracy_d<N>) to draw; "
                           "the heatmap is for recipes that evaluate per length, e.g. recipe=easy_to_hard.")
    fig, axes = plt.subplots(1, len(grids), figsize=(max(4.0, 0.5 * max(len(g[2]) for g in grids) + 2) * len(grids),
                                                     0.45 * max(len(g[1]) for g in grids) + 1.8), squeeze=False)
    for ax, (run, its, lengths, grid) in zip(axes[0], grids):
        data = np.array([[np.nan if v is None else v for v in row] for row in grid], dtype=float)
        im = ax.imshow(data, vmin=0, vmax=1, cmap="viridis", aspect="auto", origin="lower")
        for i in range(len(its)):
            for j in range(len(lengths)):
                if not np.isnan(data[i, j]):
                    ax.text(j, i, f"{100 * data[i, j]:.0f}", ha="center", va="center", fontsize=7,
                            color="white" if data[i, j] < 0.6 else "black")
        ax.set_xticks(range(len(lengths)), [str(n) for n in lengths], fontsize=8)
        ax.set_yticks(range(len(its)), [str(i) for i in its], fontsize=8)
        ax.set_xlabel("length (digits)")
        ax.set_ylabel("round")
        ax.set_title(f"{run.name} ({run.recipe})", fontsize=9)
    fig.colorbar(im, ax=axes[0].tolist(), label="exact match")
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
