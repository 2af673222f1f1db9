import json
from types import SimpleNamespace

import pytest

from selfimprove.config import GROUP_SCHEMAS, GSM8KTaskConfig
from selfimprove.tasks import TASKS, TaskDataError
from selfimprove.tasks.gsm8k import GSM8K, extract, normalize_answer, read_gsm8k_jsonl, strip_annotations

JANET = ("Janet’s ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins "
         "for her friends every day with four. She sells the remainder at the farmers' market daily for $2 "
         "per fresh duck egg. How much in dollars does she make every day at the farmers' market?")
JANET_SOLUTION = ("Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\n"
                  "She makes 9 * 2 = $<<9*2=18>>18 every day at the farmer’s market.\n#### 18")


def row(i: int) -> dict:
    a, b = i + 2, 3 * i + 1
    return {"question": f"Tom has {a} apples and buys {b} more. How many apples does Tom have?",
            "answer": f"Tom has {a} + {b} = <<{a}+{b}={a + b}>>{a + b} apples.\n#### {a + b}"}


def write_jsonl(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.fixture
def data(tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", [row(i) for i in range(40)])
    test = write_jsonl(tmp_path / "test.jsonl", [row(100 + i) for i in range(12)])
    return train, test


def make(data, **kw) -> GSM8K:
    train, test = data
    cfg = dict(name="gsm8k", train_path=train, test_path=test, hf_dataset=None, hf_config="main", data_seed=7,
               num_fewshot=3, fewshot=True, val_size=5, train_size=None, test_size=None)
    cfg.update(kw)
    return GSM8K(SimpleNamespace(**cfg))


# ----------------------------------------------------------------------------- loading
def test_splits_sizes_determinism_and_disjointness(data):
    a, b = make(data).splits(), make(data).splits()
    assert a == b
    assert {k: len(v) for k, v in a.items()} == {"train": 32, "val": 5, "test": 12, "seed": 3}
    ids = [p["id"] for rows in a.values() for p in rows]
    assert len(ids) == len(set(ids))  # exemplars are excluded from train and val
    questions = [p["question"] for rows in a.values() for p in rows]
    assert len(questions) == len(set(questions))
    assert make(data, data_seed=8).splits() != a
    limited = make(data, train_size=10, test_size=4).splits()
    assert (len(limited["train"]), len(limited["test"])) == (10, 4)
    assert limited["seed"] == a["seed"] and limited["val"] == a["val"]
    assert {p["id"] for p in limited["train"]} <= {p["id"] for p in a["train"]}


def test_every_training_problem_has_its_gold_worked_solution_and_no_test_problem_does(data):
    """For the gold-SFT control: the data file's worked solution, in the exemplars' format, right."""
    task = make(data)
    s = task.splits()
    for p in s["train"]:
        gold = task.gold_solution(p)
        raw = row(int(p["id"].split("-")[1]) - 1)  # line numbers count from 1
        assert gold == " " + strip_annotations(raw["answer"]).strip() and "<<" not in gold
        assert gold.startswith(" ") and task.reward(gold, p) == 1.0
    assert task.gold_solution(s["seed"][0]) == s["seed"][0]["solution"]
    assert all(task.gold_solution(p) is None for p in s["test"])


def test_problems_have_normalised_answers_and_stripped_seed_solutions(data):
    s = make(data).splits()
    assert all(set(p) == {"id", "question", "answer", "difficulty"} for p in s["train"] + s["val"] + s["test"])
    for p in s["seed"]:
        assert p["solution"].startswith(" Tom has ") and "<<" not in p["solution"] and ">>" not in p["solution"]
        assert p["solution"].endswith(f"\n#### {p['answer']}") and p["difficulty"] == 1
    assert all(make(data).reward(p["solution"], p) == 1.0 for p in s["seed"])
    assert s["test"][0] == {"id": "test-1", "question": row(100)["question"], "answer": "403", "difficulty": 1}


def test_prompt_formats(data):
    task, plain = make(data), make(data, fewshot=False)
    p = {"question": "What is 2+2?", "answer": "4"}
    assert plain.prompt(p) == "Q: What is 2+2?\nA:"
    assert plain.prompt(p, hint=True) == "Q: What is 2+2? (4)\nA:"
    shots = task.splits()["seed"]
    expected = "".join(f"Q: {e['question']}\nA:{e['solution']}\n\n" for e in shots) + "Q: What is 2+2?\nA:"
    assert task.prompt(p) == expected
    assert task.prompt(p, hint=True).endswith("Q: What is 2+2? (4)\nA:")
    assert task.prompt(p, hint=True).count(" (") == 4  # exemplars are hinted too
    assert "<<" not in task.prompt(p)


def test_malformed_line_names_file_and_line(tmp_path, data):
    rows = [json.dumps(row(i)) for i in range(20)]
    rows[16] = '{"question": "broken'
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(rows) + "\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl line 17: not valid JSON"):
        make((str(bad), data[1])).splits()
    rows[16] = json.dumps({"question": "no answer here"})
    bad.write_text("\n".join(rows) + "\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl line 17: missing key 'answer'"):
        read_gsm8k_jsonl(bad)
    rows[16] = json.dumps({"question": "q", "answer": "a solution without the final line"})
    bad.write_text("\n".join(rows) + "\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl line 17: 'answer' must be a worked solution ending in"):
        read_gsm8k_jsonl(bad)
    rows[16] = "[1, 2]"
    bad.write_text("\n".join(rows) + "\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl line 17: expected a JSON object"):
        read_gsm8k_jsonl(bad)


def test_missing_file_and_missing_config_name_the_option(tmp_path, data):
    with pytest.raises(TaskDataError, match=r"nope\.jsonl.*task\.test_path="):
        make((data[0], str(tmp_path / "nope.jsonl"))).splits()
    with pytest.raises(ValueError, match="task.test_path is not set"):
        make((data[0], None)).splits()
    with pytest.raises(ValueError, match="set task.train_path and task.test_path"):
        make((None, None)).splits()
    with pytest.raises(ValueError, match="leave no training problems"):
        make(data, val_size=40).splits()


def test_hf_dataset_offline_fails_with_advice(monkeypatch):
    datasets = pytest.importorskip("datasets")

    def offline(name, config, split):  # what datasets raises offline on a cache miss (no network here)
        raise ConnectionError(f"Couldn't reach '{name}' on the Hub (OfflineModeIsEnabled)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    task = make((None, None), hf_dataset="openai/gsm8k")
    with pytest.raises(TaskDataError, match=r"(?s)'openai/gsm8k'.*OfflineModeIsEnabled.*HF_HUB_OFFLINE.*task\.train_path"):
        task.splits()


def test_hf_dataset_rows_are_validated(monkeypatch, data):
    datasets = pytest.importorskip("datasets")
    rows = {"train": [row(i) for i in range(10)], "test": [row(50), {"question": "q"}]}
    monkeypatch.setattr(datasets, "load_dataset", lambda name, config, split: rows[split])
    task = make((None, None), hf_dataset="openai/gsm8k", val_size=2)
    assert len(task._source("train")) == 10
    with pytest.raises(ValueError, match=r"openai/gsm8k\[test\] row 1: missing key 'answer'"):
        task.splits()


def test_config_schema_is_registered_and_task_builds(data):
    assert GROUP_SCHEMAS[("task", "gsm8k_schema")] is GSM8KTaskConfig
    assert GSM8KTaskConfig().name == "gsm8k" and "gsm8k" in TASKS
    train, test = data
    from selfimprove.config.compose import compose

    (cfg,) = compose(["task=gsm8k", f"task.train_path={train}", f"task.test_path={test}", "task.num_fewshot=2",
                     "task.val_size=5"])
    assert cfg.task.name == "gsm8k" and cfg.task.num_fewshot == 2 and cfg.task.test_size is None
    assert len(TASKS["gsm8k"](cfg.task).splits()["seed"]) == 2


def test_annotations_are_stripped():
    assert strip_annotations(JANET_SOLUTION) == ("Janet sells 16 - 3 - 4 = 9 duck eggs a day.\n"
                                                 "She makes 9 * 2 = $18 every day at the farmer’s market.\n#### 18")


# ----------------------------------------------------------------------------- the checker
JANET_P = {"question": JANET, "answer": "18"}
CASES = [
    # the training format
    (JANET_SOLUTION, 1.0),
    (strip_annotations(JANET_SOLUTION), 1.0),
    (" 16 - 3 - 4 = 9 eggs. 9 * 2 = 18\n#### 18", 1.0),
    ("####18", 1.0),
    ("#### 18.", 1.0),
    ("#### 18.00", 1.0),
    ("#### $18", 1.0),
    ("#### 018", 1.0),
    ("#### 18 dollars", 1.0),
    ("#### The answer is 18", 1.0),
    ("She makes 9 * 2 = 18 dollars.\n#### 18\n\nQ: Tom has 5 apples.\nA: #### 5", 1.0),
    ("She makes 18.\n#### 18\n#### 20", 1.0),             # the first answer line counts
    ("She makes 9 * 2 = 18.\n#### 20", 0.0),              # #### beats the last number
    ("#### 17", 0.0),
    ("#### 180", 0.0),
    ("#### 1.8", 0.0),
    ("#### -18", 0.0),
    ("#### eighteen", 0.0),
    ("####", 0.0),
    ("She makes \\boxed{20}.\n#### 18", 1.0),             # #### beats \boxed
    # \boxed
    ("So she makes $\\boxed{18}$ dollars.", 1.0),
    ("The final answer is \\boxed{\\$18.00}", 1.0),
    ("\\boxed{18 \\text{ dollars}}", 1.0),
    ("First guess \\boxed{16}, corrected: \\boxed{18}", 1.0),
    ("\\boxed{16}", 0.0),
    ("\\boxed{18} is wrong, it is \\boxed{9}", 0.0),
    ("The answer is 20. Written properly: \\boxed{18}", 1.0),  # \boxed beats "answer is"
    # "the answer is"
    ("Janet sells 9 eggs at $2 each. The answer is $18.00.", 1.0),
    ("The answer is 18.", 1.0),
    ("The answer is: 18", 1.0),
    ("Final Answer: 18", 1.0),
    ("answer = 18", 1.0),
    ("The answer is 9 * 2 = 18.", 1.0),
    ("The answer is $18 per day, because she sold 9 eggs.", 1.0),
    ("She has 9 eggs and earns 18 dollars. The answer is 20.", 0.0),  # wrong number after "answer is"
    ("The answer is 9. She makes 18 dollars.", 0.0),
    ("I think the answer is 16. No wait, the answer is 18.", 1.0),  # the last statement wins
    ("I think the answer is 18. No wait, the answer is 16.", 0.0),
    ("The answer is eighteen.", 0.0),
    # last number
    ("Janet sells 16 - 3 - 4 = 9 eggs, and makes 9 * 2 = 18 dollars", 1.0),
    ("She makes 18 dollars every day.", 1.0),
    ("She makes $18.", 1.0),
    ("She makes 18.0 dollars", 1.0),
    ("16-3-4=9 eggs, 9*2=18", 1.0),
    ("She makes 18 dollars, from 9 eggs.", 0.0),          # the last number is 9
    ("She makes 9 * 2 = 16 dollars.", 0.0),
    (JANET, 0.0),                                         # the question echoed: its last number is 2
    ("Janet’s ducks lay 16 eggs per day.", 0.0),          # a number only in the question echo
    ("She sold the remaining eggs.", 0.0),
    ("I don't know.", 0.0),
    ("", 0.0),
    ("   \n\n  ", 0.0),
    ("She makes 18", 1.0),
    ("She makes 9 * 2 =\n\nQ: Tom has 18 apples.", 0.0),   # the number after a new "Q:" is ignored
    ("She makes 9 * 2 = 18\n\nQ: Tom has 5 apples. How many?\nA: 5", 1.0),
    ("\x00\x01 #### ", 0.0),
    ("<<9*2=18>>", 0.0),                                  # only a calculator annotation
    (None, 0.0),
    (42, 0.0),
    (["#### 18"], 0.0),
]


@pytest.mark.parametrize("text,expected", CASES)
def test_checker_on_model_style_outputs(text, expected):
    task = GSM8K(None)
    assert task.reward(text, JANET_P) == expected


BIG_P = {"question": "How many dollars did the company earn?", "answer": "1,234"}
NEG_P = {"question": "What is the temperature change?", "answer": "-7"}
DEC_P = {"question": "How much does one razor cost?", "answer": "0.5"}
OTHER_CASES = [
    (BIG_P, "The company earned $1,234.", 1.0),
    (BIG_P, "#### 1234", 1.0),
    (BIG_P, "The answer is 1,234.00 dollars.", 1.0),
    (BIG_P, "\\boxed{1{,}234}", 1.0),
    (BIG_P, "It earned 1,2345 dollars", 0.0),
    (BIG_P, "It earned 234 dollars", 0.0),
    (NEG_P, "10 - 17 = -7\n#### -7", 1.0),
    (NEG_P, "The answer is −7.", 1.0),
    (NEG_P, "The change is -$7.", 1.0),
    (NEG_P, "It went from 17 to 10, a change of 10-17 = -7", 1.0),
    (NEG_P, "#### 7", 0.0),
    (NEG_P, "17-7", 0.0),                                 # subtraction, not a negative number
    (DEC_P, "#### 0.50", 1.0),
    (DEC_P, "Each costs $0.5.", 1.0),
    (DEC_P, "\\boxed{\\frac{1}{2}}", 1.0),
    (DEC_P, "The answer is 50%.", 0.0),
    (DEC_P, "#### 5", 0.0),
    ({"question": "What percent?", "answer": "50"}, "The answer is 50%.", 1.0),
    ({"answer": "18"}, "#### 18", 1.0),                   # no question in the problem
    ({}, "#### 18", 0.0),                                 # malformed problem: no gold
    ({"answer": None}, "#### 18", 0.0),
    ({"answer": "garbage"}, "#### 18", 0.0),
]


@pytest.mark.parametrize("problem,text,expected", OTHER_CASES)
def test_checker_on_other_answer_shapes(problem, text, expected):
    assert GSM8K(None).reward(text, problem) == expected


def test_extraction_is_canonical_for_majority_voting():
    assert len(CASES) + len(OTHER_CASES) >= 50
    outs = ["#### 18", "The answer is $18.00.", "\\boxed{18}", "18 dollars", "She makes 18.0", "#### 018"]
    assert {extract(t) for t in outs} == {"18"}
    assert GSM8K(None).extract_answer("nothing") is None
    assert [normalize_answer(x) for x in ["1,234", "$-5", "-$5", "0.50", "-0", "1/3", "2/4", "12%", "x", ""]] == [
        "1234", "-5", "-5", "0.5", "0", "1/3", "0.5", "12", None, None]


def test_truncate():
    t = GSM8K(None)
    assert t.truncate(" 9 * 2 = 18\n#### 18\n\nQ: next\nA: junk") == " 9 * 2 = 18\n#### 18"
    assert t.truncate(" 9 * 2 = 18\n#### 18") == " 9 * 2 = 18\n#### 18"
    assert t.truncate(" She makes 18.\n\nQ: Tom has 5 apples.\nA: #### 5") == " She makes 18."
    assert t.truncate(" She makes 18.\nQuestion: more") == " She makes 18."
    assert t.truncate(" no answer yet") == " no answer yet"


@pytest.mark.parametrize("line,value", [
    ("#### 3/4", "0.75"), ("#### -3/4", "-0.75"), ("#### 12 / 4", "3"), ("#### 1/3", "1/3"),
    ("#### 1 1/2", "1.5"), ("#### -1 1/2", "-1.5"), ("#### 1/2 cup", "0.5"), ("#### 2.50", "2.5"),
    ("#### $1,234.50", "1234.5"), ("#### 7.5 hours", "7.5"), ("#### 3.75.", "3.75"),
])
def test_an_answer_line_with_a_fraction_or_decimal_is_read_whole(line, value):
    """Not its first digits ("3/4" is not 3): in completions and in gold solutions alike."""
    from selfimprove.tasks.gsm8k import extract, gold_of

    assert extract(f"Half of 1.5 is 0.75.\n{line}") == value
    assert gold_of(f"Worked <<1/2=0.5>> solution.\n{line}") == value


def test_star_trains_on_the_bare_question_and_samples_with_the_exemplars(tmp_path):
    """filter.fewshot_exemplars=false (recipes/star.yaml, as STaR's code without --few_shot_train):
    training prompts are the sampling prompts with the exemplar prefix removed, nothing else."""
    import json

    from selfimprove.config.compose import compose
    from selfimprove.tasks import build_task

    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps({"question": f"What is {i} + 1?", "answer": f"{i} + 1 = {i + 1}\n#### {i + 1}"}) + "\n"
                             for i in range(12)))
    (cfg,) = compose(["recipe=star", "task=gsm8k", f"task.train_path={train}", f"task.test_path={train}",
                      "task.num_fewshot=2", "task.val_size=2"])
    assert cfg.filter.fewshot_exemplars is False
    task = build_task(cfg.task)
    problem = task.splits()["train"][0]
    full = task.prompt(problem)
    bare = task.without_exemplars(full)
    assert full.count("Q: ") == 3 and bare == f"Q: {problem['question']}\nA:" and full.endswith(bare)
    assert task.without_exemplars(bare) == bare
