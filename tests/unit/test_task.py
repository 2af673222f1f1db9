from types import SimpleNamespace

import pytest

from selfimprove.tasks.arithmetic import Arithmetic, solution
from selfimprove.tasks.columns import steps


def make(**kw):
    cfg = dict(name="arithmetic", data_seed=7, seed_examples=30, seed_weights=[0.5, 0.5],
               train_weights=[0.25, 0.25, 0.25, 0.25], test_weights=[0, 0, 0.5, 0.5], train_size=60, val_size=10,
               test_size=20)
    cfg.update(kw)
    return Arithmetic(SimpleNamespace(**cfg))


@pytest.mark.parametrize("text,expected", [
    (" 8+6=14,7+5+1=13,4+3+1=8\n#### 834", 1.0),
    ("#### 834", 1.0),
    ("####834", 1.0),
    ("#### 0834", 1.0),
    ("#### 834\nQ: 1+1", 1.0),
    ("#### 835", 0.0),
    ("#### 83", 0.0),
    ("834", 0.0),              # no answer line
    ("####", 0.0),
    ("#### abc", 0.0),
    ("", 0.0),
    ("#### -834", 0.0),
    ("\x00\x01 #### ", 0.0),
    (None, 0.0),               # malformed output never raises
])
def test_answer_checker(text, expected):
    assert make().reward(text, {"answer": "834"}) == expected


def test_truncate_cuts_after_answer_line():
    task = make()
    assert task.truncate(" 1+2=3\n#### 3\nQ: 4+4\nA: junk") == " 1+2=3\n#### 3"
    assert task.truncate("no answer yet") == "no answer yet"


def test_scratchpad_is_a_correct_column_addition():
    assert ",".join(steps(478, 356)) == "8+6=14,7+5+1=13,4+3+1=8"
    assert solution(95, 7) == " 5+7=12,9+0+1=10\n#### 102"
    assert make().reward(solution(12345, 678), {"answer": str(12345 + 678)}) == 1.0


def test_splits_are_deterministic_disjoint_and_sized_by_difficulty():
    a, b = make().splits(), make().splits()
    assert a == b
    assert {k: len(v) for k, v in a.items()} == {"test": 20, "val": 10, "seed": 30, "train": 60}
    questions = [p["question"] for rows in a.values() for p in rows]
    assert len(questions) == len(set(questions))
    assert all(1 <= p["difficulty"] <= 2 and p["solution"] for p in a["seed"])
    assert all(3 <= p["difficulty"] <= 4 for p in a["test"])
    assert all("solution" not in p for p in a["train"] + a["test"])  # gold answers only
    assert all(eval(p["question"]) == int(p["answer"]) for rows in a.values() for p in rows)
    assert make(data_seed=8).splits() != a


def test_hint_prompt_shows_answer():
    p = {"question": "12+30", "answer": "42"}
    assert make().prompt(p) == "Q: 12+30\nA:"
    assert make().prompt(p, hint=True) == "Q: 12+30 (42)\nA:"


def test_bad_weights_are_explained():
    with pytest.raises(ValueError, match="task.seed_weights must be non-negative"):
        make(seed_weights=[0, 0]).splits()
