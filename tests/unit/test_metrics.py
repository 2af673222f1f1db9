from itertools import combinations

import pytest

from selfimprove.metrics import majority, pass_at_k
from selfimprove.stages.filter import select


def brute_pass_at_k(outcomes, k):
    subsets = list(combinations(outcomes, k))
    return sum(any(s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n", range(1, 7))
def test_pass_at_k_matches_brute_force(n):
    for c in range(n + 1):
        outcomes = [True] * c + [False] * (n - c)
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(brute_pass_at_k(outcomes, k))


def test_pass_at_k_rejects_k_above_n():
    with pytest.raises(ValueError):
        pass_at_k(2, 1, 3)


def test_majority():
    assert majority(["3", "4", "3"]) == "3"
    assert majority([None, "4", None]) == "4"
    assert majority(["5", "6"]) == "5"  # tie -> first seen
    assert majority([None, None]) is None


def rows(pid, texts_rewards):
    return [{"prompt_id": pid, "text": t, "reward": r} for t, r in texts_rewards]


def test_select_filters_dedups_and_caps():
    data = rows("a", [("x", 1.0), ("x", 1.0), ("y", 1.0), ("z", 0.0)]) + rows("b", [("u", 1.0), ("v", None)])
    kept = select(data, 1.0, None, True, seed=0)
    assert sorted((r["prompt_id"], r["text"]) for r in kept) == [("a", "x"), ("a", "y"), ("b", "u")]
    assert len(select(data, 1.0, None, False, seed=0)) == 4
    capped = select(data, 1.0, 1, True, seed=0)
    assert sorted(r["prompt_id"] for r in capped) == ["a", "b"]
    # without dedup, duplicates would make "x" twice as likely; with it the draw is uniform over texts
    picks = {select(data, 1.0, 1, True, seed=s)[0]["text"] for s in range(30)}
    assert picks == {"x", "y"}
