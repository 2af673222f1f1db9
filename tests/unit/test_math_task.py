"""task=math: MATH-style JSONL loading and the math-verify checker on hand-written outputs."""
import json
from types import SimpleNamespace

import pytest

from selfimprove.tasks import TaskDataError
from selfimprove.tasks.competition_math import CompetitionMath, final_answer

ROWS = [
    {"problem": "What is $\\frac{1}{2}+\\frac{1}{3}$?", "solution": "Sum: $\\boxed{\\frac{5}{6}}$.", "level": "Level 1"},
    {"problem": "Solve $x^2=4$ for $x>0$.", "solution": "So $x=\\boxed{2}$.", "level": "Level 2"},
    {"problem": "Simplify $\\sqrt{8}$.", "answer": "2\\sqrt{2}", "level": 3},
    {"problem": "Where is $x^2 < 1$?", "solution": "On $\\boxed{(-1,1)}$."},
    {"problem": "What is 15% of 80?", "solution": "$0.15 \\cdot 80 = \\boxed{12}$", "level": "Level 1"},
    {"problem": "Compute $3!$.", "solution": "$3! = \\boxed{6}$", "level": "Level 1"},
]


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def task(tmp_path, **over):
    cfg = dict(name="math", train_path=write(tmp_path / "train.jsonl", ROWS), test_path=write(tmp_path / "test.jsonl", ROWS[:3]),
               hf_dataset=None, hf_config="default", data_seed=0, num_fewshot=1, fewshot=True, val_size=1,
               train_size=None, test_size=None)
    return CompetitionMath(SimpleNamespace(**{**cfg, **over}))


def test_splits_prompts_and_hint(tmp_path):
    t = task(tmp_path)
    s = t.splits()
    assert (len(s["seed"]), len(s["val"]), len(s["train"]), len(s["test"])) == (1, 1, 4, 3)
    assert s["test"][0]["answer"] == "\\frac{5}{6}" and s["test"][2]["answer"] == "2\\sqrt{2}"
    assert [p["difficulty"] for p in s["test"]] == [1, 2, 3]
    prompt = t.prompt(s["test"][1], hint=True)
    assert prompt.endswith("Problem: Solve $x^2=4$ for $x>0$. (The answer is 2.)\nSolution:")
    assert prompt.startswith("Problem: ") and "\\boxed" in prompt  # the exemplar's worked solution


GOLD = {"frac": "\\frac{5}{6}", "two": "2", "surd": "2\\sqrt{2}", "interval": "(-1,1)", "twelve": "12"}
VERDICTS = [
    ("frac", " Adding gives $\\boxed{\\frac{5}{6}}$.", True),
    ("frac", " The answer is $\\dfrac{5}{6}$.", True),
    ("frac", " So we get \\boxed{5/6}", True),
    ("frac", " \\boxed{0.8333}", False),
    ("frac", " \\boxed{\\frac{10}{12}}", True),
    ("frac", " \\boxed{\\frac{6}{5}}", False),
    ("two", " Hence $x = \\boxed{2}$.", True),
    ("two", " \\boxed{x = 2}", True),
    ("two", " \\boxed{\\sqrt{4}}", True),
    ("two", " \\boxed{-2}", False),
    ("two", " \\boxed{2.0}", True),
    ("two", " x is two", False),  # no stated answer
    ("surd", " \\boxed{2\\sqrt{2}}", True),
    ("surd", " \\boxed{\\sqrt{8}}", True),
    ("surd", " \\boxed{2\\sqrt 2}", True),
    ("surd", " \\boxed{2.83}", False),
    ("interval", " \\boxed{(-1, 1)}", True),
    ("interval", " \\boxed{\\left(-1,1\\right)}", True),
    ("interval", " \\boxed{[-1,1]}", False),
    ("twelve", " $\\boxed{12}$", True),
    ("twelve", " The answer is 12.", True),
    ("twelve", " \\boxed{12\\%}", True),  # math-verify drops a percent sign, as MATH graders do
    ("twelve", " First $\\boxed{10}$, no wait, $\\boxed{12}$.", True),  # the last boxed counts
    ("twelve", " \\boxed{12}\nProblem: next one\nSolution: \\boxed{7}", True),  # cut at a new problem
    ("twelve", " \\boxed{13}\nProblem: next one\nSolution: \\boxed{12}", False),
]


@pytest.mark.parametrize("key,text,correct", VERDICTS)
def test_checker_verdicts(tmp_path, key, text, correct):
    t = task(tmp_path)
    assert t.reward(text, {"answer": GOLD[key]}) == float(correct)


def test_gold_solutions_are_judged_correct(tmp_path):
    t = task(tmp_path)
    for p, raw in zip(t.splits()["test"], ROWS):
        assert t.reward(" " + raw.get("solution", f"\\boxed{{{raw.get('answer')}}}"), p) == 1.0


def test_final_answer_handles_nested_braces():
    assert final_answer("so \\boxed{\\frac{a^{2}}{b}} done") == "\\frac{a^{2}}{b}"
    assert final_answer("nothing here") is None


def test_bad_rows_name_file_and_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(ROWS[0]) + "\n" + json.dumps({"problem": "no answer", "solution": "none"}) + "\n")
    with pytest.raises(TaskDataError, match=r"bad.jsonl line 2: no answer: give 'answer'"):
        task(tmp_path, train_path=str(bad)).splits()
    with pytest.raises(TaskDataError, match=r"not found.*task.train_path.*problem"):
        task(tmp_path, train_path=str(tmp_path / "missing.jsonl")).splits()


def test_majority_voting_groups_equivalent_answers(tmp_path):
    """maj@k and the self-consistency scorer vote with the task's equivalence: `1/2`, `0.5` and
    `\\frac{1}{2}` are one answer (3 votes) and beat `3` (2 votes); string counting would pick `3`."""
    from selfimprove.best_of_k_eval import candidate_metrics
    from selfimprove.stages.evaluate import sampled_metrics
    from selfimprove.stages.score import SCORERS

    t = task(tmp_path)
    problem = {"id": "p", "answer": "\\frac{1}{2}"}
    texts = [f"So the answer is $\\boxed{{{a}}}$." for a in ["3", "1/2", "3", "0.5", "\\frac{1}{2}"]]
    correct = [t.reward(x, problem) >= 1 for x in texts]
    answers = [t.extract_answer(x) for x in texts]
    assert correct == [False, True, False, True, True]
    assert sampled_metrics([correct], [answers], t.same_answer, [5])["maj@5"] == 1.0
    assert sampled_metrics([correct], [answers], lambda a, b: a == b, [5])["maj@5"] == 0.0  # by strings: wrong
    rows = [{"answer": a, "correct": c} for a, c in zip(answers, correct)]
    assert candidate_metrics([rows], [5], with_scores=False, same=t.same_answer)["majority@5"] == 1.0
    cfg = SimpleNamespace(min_agreement=0.5)
    assert SCORERS["majority"]([{"prompt_id": "p", "text": x} for x in texts], {}, t, cfg) == [0, 1, 0, 1, 1]
