"""Estimators over sampled outcomes. Pure functions, unit-tested against brute force."""
from __future__ import annotations

from collections import Counter
from math import comb
from typing import Callable, Optional, Sequence


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k (Chen et al., 2021): 1 - C(n-c, k) / C(n, k), from n samples with c correct."""
    if not 1 <= k <= n:
        raise ValueError(f"pass@k needs 1 <= k <= n (got k={k}, n={n})")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def majority(answers: Sequence[Optional[str]]) -> Optional[str]:
    """The most common non-empty answer; ties go to the one seen first. None if all are None."""
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return None
    best = max(counts.values())
    return next(a for a in answers if a is not None and counts[a] == best)


def mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


def answer_clusters(answers: Sequence[Optional[str]], same: Callable[[str, str], bool]) -> list[Optional[int]]:
    """Each answer's cluster under the task's equivalence (`same`), numbered in order of first
    appearance; None stays None. `1/2` and `0.5` vote together on a task that says they are equal,
    which string counting would split."""
    reps: list[str] = []
    out: list[Optional[int]] = []
    for a in answers:
        if a is None:
            out.append(None)
            continue
        found = next((i for i, r in enumerate(reps) if a == r or same(a, r)), None)
        if found is None:
            reps.append(a)
            found = len(reps) - 1
        out.append(found)
    return out


def gold_cluster(clusters: Sequence[Optional[int]], correct: Sequence[bool]) -> int:
    """The cluster of a sample the task's checker accepts (-1 when none is correct): majority voting
    is then right exactly when it picks an answer the checker accepts, the same test as accuracy."""
    return next((c for c, ok in zip(clusters, correct) if ok and c is not None), -1)
