"""The statistics of every comparison (`selfimprove compare`, the results scripts): the one
t-interval over seeds, Wilson's interval over problems, and a paired comparison of two methods on
the same test problems (exact sign test, paired bootstrap, Holm). scipy does the distributions;
nothing here imports torch."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

INTERVAL = "95% t-interval over seeds"  # what every `±` in compare's output means


def t_interval(values: list[float], level: float = 0.95) -> tuple[float, Optional[float]]:
    """(mean, half-width of the `level` t-interval). With one value the width is None: one seed
    says nothing about the spread between seeds."""
    from scipy import stats

    n = len(values)
    if n == 0:
        raise ValueError("a t-interval over no values: there is nothing to average (no seed reported this figure)")
    mean = sum(values) / n
    if n < 2:
        return mean, None
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)


def wilson_interval(successes: int, n: int, level: float = 0.95) -> tuple[float, float, float]:
    """(proportion, low, high): the Wilson score interval of a proportion over n problems."""
    from scipy import stats

    if n == 0:
        raise ValueError("an interval over 0 problems")
    ci = stats.binomtest(successes, n).proportion_ci(confidence_level=level, method="wilson")
    return successes / n, float(ci.low), float(ci.high)


@dataclass
class Paired:
    """A minus B over the same problems (each problem's correctness averaged over seeds)."""

    problems: int
    diff: float  # mean of A - B: the accuracy difference
    ci_low: float  # paired-bootstrap 95% percentile interval of `diff`
    ci_high: float
    a_better: int  # problems where A is right more often than B
    b_better: int
    p_sign: float  # exact two-sided sign test over the problems where A and B differ


def paired_comparison(a: list[float], b: list[float], resamples: int = 10_000, seed: int = 0) -> Paired:
    """Paired comparison of per-problem correctness `a[i]`, `b[i]` (same problem i, in [0, 1]).

    The sign test asks whether problems A gets right and B does not outnumber the reverse; ties
    (both right or both wrong) carry no information and are left out, as in McNemar's test. The
    bootstrap resamples problems, so its interval covers what another draw of test problems of
    the same kind would give (not another seed: average over seeds before comparing)."""
    import numpy as np
    from scipy import stats

    if len(a) != len(b):
        raise ValueError(f"a paired comparison needs one value of A and one of B per problem; got {len(a)} values "
                         f"for A and {len(b)} for B. Pass both methods' results on the same problems, in the same "
                         f"order.")
    if not len(a):
        raise ValueError("a paired comparison over no problems says nothing; pass each method's per-problem results "
                         "(at least one problem).")
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    wins, losses = int((d > 0).sum()), int((d < 0).sum())
    p = float(stats.binomtest(wins, wins + losses, 0.5).pvalue) if wins + losses else 1.0
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(resamples, len(d)))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return Paired(len(d), float(d.mean()), float(lo), float(hi), wins, losses, p)


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjustment: controls the chance of any false 'significant' among many pairs."""
    order = sorted(range(len(pvalues)), key=pvalues.__getitem__)
    out, running = [0.0] * len(pvalues), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(pvalues) - rank) * pvalues[i]))
        out[i] = running
    return out
