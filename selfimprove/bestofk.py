"""Best-of-k estimators over n sampled candidates per problem (V-STaR, Hosseini et al. 2024).

Each is the exact expectation over a k-subset drawn uniformly without replacement from the n
candidates, so one set of n >= k samples gives an unbiased estimate for every k (Best-of-1 is
pass@1). Pure functions, unit-tested against brute-force enumeration of the subsets.

Ties. The paper's Eq. 3 assumes distinct verifier scores; identical candidates (frequent with a
small model) share a score. Here a tie is broken uniformly at random and the estimate is the exact
expectation over that choice too, in closed form instead of averaging over shuffles. Without ties
the value equals Eq. 3. Majority voting breaks ties between equally frequent answers the same way.
"""
from __future__ import annotations

from collections import Counter
from fractions import Fraction
from math import comb
from typing import Hashable, Optional, Sequence


def _check(n: int, k: int) -> None:
    if not 1 <= k <= n:
        raise ValueError(f"Best-of-k needs 1 <= k <= n candidates (got k={k}, n={n})")


def best_of_k(scores: Sequence[float], correct: Sequence[bool], k: int) -> float:
    """Probability that the top-scored candidate of a random k-subset is correct (Eq. 3).

    Group the candidates by score level, highest first. The subset's top level is level L when
    it holds none of the `above` higher-scored candidates and at least one of L's m members:
    C(m + below, k) - C(below, k) of the C(n, k) subsets. The pick among L's members in the
    subset is uniform, so it is correct with probability c/m (c correct members of L). With
    m = 1 this is Eq. 3's term C(n - i - 1, k - 1) * alpha_i."""
    n = len(scores)
    _check(n, k)
    if len(correct) != n:
        raise ValueError(f"{n} scores but {len(correct)} correctness labels")
    levels: dict[float, list[int]] = {}
    for s, ok in zip(scores, correct):
        tally = levels.setdefault(float(s), [0, 0])
        tally[0] += 1
        tally[1] += int(bool(ok))
    below, expected = n, Fraction(0)
    for s in sorted(levels, reverse=True):
        m, c = levels[s]
        below -= m
        if c:  # exact rationals: C(n, k) overflows a float's precision for the paper's n = 128
            expected += Fraction(c * (comb(m + below, k) - comb(below, k)), m)
    return float(expected / comb(n, k))


def majority_at_k(answers: Sequence[Optional[Hashable]], gold: Hashable, k: int) -> float:
    """Probability that majority voting over a random k-subset returns the gold answer.

    None (no answer) never wins a vote; a subset with no answer at all is wrong. Counted exactly:
    for each number g >= 1 of gold answers in the subset, the other answers must each appear at
    most g times; with t of them at exactly g the vote is a tie won by gold with probability
    1 / (t + 1). A small DP over the other answers counts the ways (items picked, t)."""
    n = len(answers)
    _check(n, k)
    counts = Counter(a for a in answers if a is not None)
    gold_count = counts.pop(gold, 0)
    missing = n - sum(counts.values()) - gold_count
    others = list(counts.values())
    total = 0.0
    denominator = comb(n, k)
    for g in range(1, min(gold_count, k) + 1):
        rest = k - g
        # ways[s][t]: ways to pick s non-gold items with every other answer at most g times and
        # t answers at exactly g; unanswered candidates are free
        ways = [[0] * (rest // g + 2) for _ in range(rest + 1)]
        for s in range(min(missing, rest) + 1):
            ways[s][0] = comb(missing, s)
        for o in others:
            new = [[0] * len(ways[0]) for _ in range(rest + 1)]
            for s in range(rest + 1):
                for t, w in enumerate(ways[s]):
                    if not w:
                        continue
                    for j in range(min(o, g, rest - s) + 1):
                        tt = t + (j == g)
                        new[s + j][tt] += w * comb(o, j)
            ways = new
        hits = sum(w / (t + 1) for t, w in enumerate(ways[rest]) if w)
        total += comb(gold_count, g) * hits / denominator
    return total


def pairwise_accuracy(scores: Sequence[float], correct: Sequence[bool]) -> tuple[float, int]:
    """Over every (correct, incorrect) pair of one problem's candidates: how many the scores
    order correctly (a tie counts one half), and the number of pairs."""
    good = sorted(s for s, ok in zip(scores, correct) if ok)
    bad = sorted(s for s, ok in zip(scores, correct) if not ok)
    wins = 0.0
    for s in good:
        wins += sum(1.0 if b < s else 0.5 if b == s else 0.0 for b in bad)
    return wins, len(good) * len(bad)
