"""Best-of-k estimators against brute force: enumerate every k-subset of n candidates and average
what the subset's top-scored candidate (or its majority vote) gets right, ties split evenly."""
import random
from collections import Counter
from itertools import combinations
from math import comb

import pytest

from selfimprove.bestofk import best_of_k, majority_at_k, pairwise_accuracy
from selfimprove.metrics import pass_at_k


def brute_best_of_k(scores, correct, k):
    total = 0.0
    for subset in combinations(range(len(scores)), k):
        top = max(scores[i] for i in subset)
        tied = [i for i in subset if scores[i] == top]
        total += sum(correct[i] for i in tied) / len(tied)  # a uniform pick among the tied
    return total / comb(len(scores), k)


def brute_majority(answers, gold, k):
    total = 0.0
    for subset in combinations(range(len(answers)), k):
        counts = Counter(answers[i] for i in subset if answers[i] is not None)
        if not counts:
            continue
        best = max(counts.values())
        tied = [a for a, c in counts.items() if c == best]
        total += (gold in tied) / len(tied)
    return total / comb(len(answers), k)


def paper_eq3(scores, correct, k):
    """The paper's estimator verbatim (distinct scores only)."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    a = [int(correct[i]) for i in order]
    n = len(a)
    return sum(comb(n - i - 1, k - 1) * a[i] for i in range(n - k + 1)) / comb(n, k)


@pytest.mark.parametrize("seed", range(40))
def test_best_of_k_matches_brute_force_with_and_without_ties(seed):
    rng = random.Random(seed)
    n = rng.randint(1, 9)
    levels = rng.choice([3, 100])  # few levels: many ties; many levels: mostly distinct
    scores = [float(rng.randrange(levels)) for _ in range(n)]
    correct = [rng.random() < 0.4 for _ in range(n)]
    for k in range(1, n + 1):
        assert best_of_k(scores, correct, k) == pytest.approx(brute_best_of_k(scores, correct, k), abs=1e-12)


@pytest.mark.parametrize("seed", range(10))
def test_best_of_k_equals_the_papers_eq3_without_ties(seed):
    rng = random.Random(seed)
    n = rng.randint(2, 40)
    scores = rng.sample(range(1000), n)
    correct = [rng.random() < 0.3 for _ in range(n)]
    for k in (1, 2, n // 2 or 1, n):
        assert best_of_k(scores, correct, k) == pytest.approx(paper_eq3(scores, correct, k), abs=1e-12)


def test_best_of_k_edge_values():
    scores, correct = [0.3, -1.0, 2.5, 0.0], [False, True, False, True]
    assert best_of_k(scores, correct, 1) == pytest.approx(0.5)  # Best-of-1 is pass@1
    assert best_of_k(scores, correct, 4) == 0.0  # the whole set: always the top-scored, which is wrong
    assert best_of_k([1.0] * 4, correct, 4) == pytest.approx(0.5)  # all tied: a uniform pick
    # a verifier that ranks every correct candidate first reaches the oracle (pass@k)
    perfect = [1.0 if ok else 0.0 for ok in correct]
    for k in range(1, 5):
        assert best_of_k(perfect, correct, k) == pytest.approx(pass_at_k(4, 2, k))
    # the paper's n = 128, k = 64 in exact arithmetic
    rng = random.Random(0)
    big = [rng.random() < 0.5 for _ in range(128)]
    assert 0.0 <= best_of_k([rng.random() for _ in range(128)], big, 64) <= 1.0
    with pytest.raises(ValueError, match="1 <= k <= n"):
        best_of_k(scores, correct, 5)


@pytest.mark.parametrize("seed", range(40))
def test_majority_at_k_matches_brute_force(seed):
    rng = random.Random(100 + seed)
    n = rng.randint(1, 10)
    pool = ["7", "8", "9", None][: rng.randint(1, 4)]
    answers = [rng.choice(pool) for _ in range(n)]
    gold = rng.choice(["7", "8"])
    for k in range(1, n + 1):
        assert majority_at_k(answers, gold, k) == pytest.approx(brute_majority(answers, gold, k), abs=1e-12)


def test_majority_at_k_examples():
    assert majority_at_k(["5", "5", "6"], "5", 3) == 1.0
    assert majority_at_k(["5", "6"], "5", 2) == 0.5  # a two-way tie
    assert majority_at_k([None, None, "6"], "5", 2) == 0.0
    assert majority_at_k(["5", None, None], "5", 1) == pytest.approx(1 / 3)  # maj@1 is pass@1


def test_pairwise_accuracy_counts_every_correct_incorrect_pair():
    wins, pairs = pairwise_accuracy([3.0, 1.0, 2.0, 1.0], [True, True, False, False])
    # correct 3.0 beats both; correct 1.0 loses to 2.0 and ties 1.0
    assert (wins, pairs) == (2.5, 4)
    assert pairwise_accuracy([1.0, 2.0], [True, True]) == (0.0, 0)
