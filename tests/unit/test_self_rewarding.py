"""Self-Rewarding's pure parts: score parsing on hand-written judgments, pair construction with
ties, the template and regex checks that run at startup, and the built-in task's rubric."""
import random
import re

import pytest

from selfimprove.config.compose import compose
from selfimprove.config import ConfigError
from selfimprove.judges import (JudgeConfigError, check_regex_on, compile_score_regex, load_template, parse_score)
from selfimprove.stages.pairs import build_pairs
from selfimprove.tasks.arithmetic_judging import (FAMILIES, column_checks, eft_examples, judge_pairs, judgment,
                                                  parse_instruction, perturb, points)

RX = compile_score_regex(r"Score: ([0-9.]+)")


@pytest.mark.parametrize("text,expected", [
    ("The response answers directly and correctly.\nScore: 4", 4.0),
    ("Good work. Score: 3.5", 3.5),
    ("Ends a sentence. Score: 5.", 5.0),
    # several scores: the last one is the verdict (the justification may quote the format)
    ("It asks for 'Score: <total points>'; I give 2 points.\nScore: 2", 2.0),
    ("Score: 1 at first, but on reflection\nScore: 3", 3.0),
    # out of range: unparseable, not clipped
    ("Excellent!\nScore: 7", None),
    ("Score: 4\nScore: 9", None),
    # missing or malformed
    ("A fine answer, I would say four points.", None),
    ("Score: ", None),
    ("Score: ..", None),
    ("", None),
    (None, None),
])
def test_parse_score(text, expected):
    assert parse_score(text, RX, 0, 5) == expected


def row(pid, sid, score, text=None):
    return {"prompt_id": pid, "sample_id": sid, "prompt": f"Q: {pid}\nA:", "text": text or f"{pid}-{sid}",
            "score": score}


def test_pairs_take_highest_and_lowest_and_drop_ties():
    rows = [row("a", 0, 3.0), row("a", 1, 4.5), row("a", 2, 1.0), row("a", 3, 4.5),  # hi: first 4.5, lo: 1.0
            row("b", 0, 2.0), row("b", 1, 2.0), row("b", 2, 2.0), row("b", 3, 2.0),  # all tied
            row("c", 0, 5.0), row("c", 1, None), row("c", 2, None), row("c", 3, None),  # one scored
            row("d", 0, 4.0, "same"), row("d", 1, 1.0, "same"),  # one distinct text
            row("e", 0, None), row("e", 1, 2.0), row("e", 2, 3.0)]  # unscored ignored
    pairs, counts = build_pairs(rows)
    assert [(p["prompt_id"], p["chosen"], p["rejected"]) for p in pairs] == [("a", "a-1", "a-2"), ("e", "e-2", "e-1")]
    assert counts == {"prompts": 5, "too_few_scored": 1, "ties": 1, "identical": 1}
    assert pairs[0]["chosen_score"] == 4.5 and pairs[0]["rejected_score"] == 1.0


def test_pairs_when_everything_ties():
    pairs, counts = build_pairs([row("a", i, 3.0) for i in range(4)] + [row("b", i, None) for i in range(4)])
    assert pairs == [] and counts["ties"] == 1 and counts["too_few_scored"] == 1


def test_identical_texts_pool_their_judgments():
    rows = [{**row("a", 0, None, "x"), "scores": [5.0, 1.0, None]}, {**row("a", 1, None, "y"), "scores": [4.0]},
            {**row("a", 2, None, "x"), "scores": [3.0, 3.0]}]
    pairs, _ = build_pairs(rows)  # x: mean(5, 1, 3, 3) = 3.0 < y: 4.0
    assert [(p["chosen"], p["rejected"], p["chosen_score"], p["rejected_score"]) for p in pairs] == [("y", "x", 4.0, 3.0)]


def test_template_needs_placeholders_and_a_header(tmp_path):
    assert "{prompt}" in load_template("additive_5pt.txt").body
    t = load_template("scratchpad_5pt.txt")
    assert "Yuan et al. 2024" in t.header and "#" not in t.body
    assert t.render("Q: 1+2\nA:", " 1+2=3\n#### 3") == "Rate 1+2=3\n#### 3\nQ: 1+2\nA:"
    # a response that itself contains a placeholder is not expanded again
    assert t.render("{response}", "x") == "Ratex\n{response}"
    bad = tmp_path / "bad.txt"
    bad.write_text("# rubric: mine\nRate this: {response}\n")
    with pytest.raises(JudgeConfigError, match=r"lacks the placeholder\(s\) \{prompt\}"):
        load_template(str(bad))
    bare = tmp_path / "bare.txt"
    bare.write_text("{prompt} {response}\n")
    with pytest.raises(JudgeConfigError, match="no header"):
        load_template(str(bare))
    with pytest.raises(JudgeConfigError, match="neither a shipped template"):
        load_template("nope.txt")


def test_score_regex_checks():
    with pytest.raises(JudgeConfigError, match="no capture group"):
        compile_score_regex(r"Score: \d")
    with pytest.raises(JudgeConfigError, match="not a valid regex"):
        compile_score_regex(r"Score: ([0-9")
    check_regex_on(RX, ["ok\nScore: 3"], 0, 5, "x")
    with pytest.raises(JudgeConfigError, match="reads no score .* from any of the 2 EFT judgments"):
        check_regex_on(compile_score_regex(r"Rating=(\d)"), ["a\nScore: 3", "b\nScore: 4"], 0, 5, "x")


@pytest.mark.parametrize("override,expected", [
    (["judge.score_regex='Rating: (\\d)'"], "reads no score in \\[0, 5\\] from any of the 100 EFT judgments"),
    (["judge.score_regex='Score: \\d'"], "no capture group"),
    (["judge.template=missing.txt"], "neither a shipped template"),
    (["judge.samples=0"], "judge.samples must be >= 1"),
    (["judge_seed.eft_source=pool"], "judge_seed.eft_source must be 'seed'"),
])
def test_bad_judge_config_is_rejected_at_startup(override, expected):
    with pytest.raises(ConfigError, match=expected):
        compose(["recipe=self_rewarding", *override])


def test_template_without_placeholders_is_rejected_at_startup(tmp_path):
    t = tmp_path / "t.txt"
    t.write_text("# from: nowhere\nJudge this answer: {response}\n")
    with pytest.raises(ConfigError, match="lacks the placeholder"):
        compose(["recipe=self_rewarding", f"judge.template={t}"])


def test_rubric_points_follow_the_mistake():
    q = "4783+3561"
    gold = " 3+1=4,8+6=14,7+5+1=13,4+3+1=8\n#### 8344"
    assert points(q, gold) == {"form": 1, "work": 1, "size": 1, "close": 1, "answer": 1}
    assert points(q, gold.replace("8344", "8345")) == {"form": 1, "work": 1, "size": 1, "close": 1, "answer": 0}
    assert points(q, gold.replace("8344", "8355"))["close"] == 0  # two digits wrong
    assert points(q, gold.replace("8344", "344")) == {"form": 1, "work": 1, "size": 0, "close": 0, "answer": 0}
    assert points(q, " 3+1=4,8+6=1x\n#### 8344")["work"] == 0  # a malformed step
    assert points(q, "\n#### 8344") == {"form": 1, "work": 0, "size": 1, "close": 1, "answer": 1}
    assert sum(points(q, "banana").values()) == 0
    text, score = judgment(q, gold)
    assert text == " 3+1=4:4=,8+6=14:4=,7+5+1=13:3=,4+3+1=8:8=;_=\n11111\nScore: 5"
    assert parse_score(text, RX, 0, 5) == score == 5
    # each column: the correct step, the stated answer's digit for it, and whether they agree
    assert judgment(q, " 3+1=4\n#### 8345")[0] == " 3+1=4:5x,8+6=14:4=,7+5+1=13:3=,4+3+1=8:8=;_=\n11110\nScore: 4"
    assert judgment(q, " 3+1=4")[0] == " 3+1=4:_x,8+6=14:_x,7+5+1=13:_x,4+3+1=8:_x;_=\n01000\nScore: 1"
    # digits beyond the columns are checked against the last carry
    assert column_checks(9783, 3561, "13344").endswith("9+3+1=13:3=;1=")
    assert column_checks(4783, 3561, "18344").endswith(";1x") and column_checks(9783, 3561, "3344").endswith(";_x")


def test_eft_scores_vary_and_held_out_pairs_are_correct_vs_incorrect():
    problems = [{"id": f"p{i}", "question": f"{random.Random(i).randint(10, 9999)}+{i * 37}"} for i in range(200)]
    rows = eft_examples(problems, 2, seed=0)
    scores = {r["score"] for r in rows}
    assert scores >= {0, 1, 2, 3, 4, 5} and {r["family"] for r in rows} == set(FAMILIES)
    assert all(parse_score(r["judgment"], RX, 0, 5) == r["score"] for r in rows)
    for p in judge_pairs(problems, seed=0):
        a, b = map(int, p["question"].split("+"))
        good, bad = (re.search(r"#### (\d+)", t) for t in (p["good"], p["bad"]))
        assert int(good[1]) == a + b and (bad is None or int(bad[1]) != a + b)
    assert perturb(12, 34, "gold", random.Random(0)) == " 2+4=6,1+3=4\n#### 46"


def test_self_instruction_parser():
    assert parse_instruction(" 123+4567\nQ: 1+1", 5) == "123+4567"
    assert parse_instruction(" 123456+1", 5) is None  # more digits than the task has
    for bad in (" 12+", " 012+3", " 1+2+3", " abc", "", " 1-2"):
        assert parse_instruction(bad, 5) is None


def test_difficulty_quotas_keep_the_asked_shares_in_order():
    from selfimprove.stages.self_instruct import _quotas
    from selfimprove.tasks.arithmetic import Arithmetic

    task = Arithmetic(None)
    assert [task.difficulty_of(q) for q in ("12+345", "1+2", "9999+1", "x+1")] == [3, 1, 4, None]
    qs = ["1+2", "12+3", "123+4", "1234+5", "12+34", "1+2345", "9+9", "999+1", "5555+5"]
    kept = [{"question": q, "difficulty": task.difficulty_of(q)} for q in qs]
    # 4-digit only: every 4-digit prompt, in the order written
    out, dropped = _quotas(kept, [0, 0, 0, 1], None)
    assert [p["question"] for p in out] == ["1234+5", "1+2345", "5555+5"] and dropped == 6
    # half 2-digit, half 4-digit: the scarcer 2-digit (2 of them) bounds the total at 4
    out, _ = _quotas(kept, [0, 1, 0, 1], None)
    assert [p["question"] for p in out] == ["12+3", "1234+5", "12+34", "1+2345"]
    out, _ = _quotas(kept, [0, 0, 0, 1], 2)
    assert len(out) == 2
    # a difficulty nobody wrote leaves nothing to keep
    assert _quotas(kept, [0, 0, 0, 0, 1], None) == ([], 9)


def test_difficulty_quotas_need_a_task_that_tells_difficulty():
    from selfimprove.stages import StageError
    from selfimprove.stages.self_instruct import _quotas

    with pytest.raises(StageError, match="difficulty_weights=null"):
        _quotas([{"question": "Write a poem.", "difficulty": None}], [1], None)


@pytest.mark.parametrize("weights", ["[]", "[0,0]", "[1,-1]"])
def test_bad_difficulty_weights_are_rejected_at_startup(weights):
    with pytest.raises(ConfigError, match="difficulty_weights must be non-negative"):
        compose(["recipe=self_rewarding", f"self_instruct.difficulty_weights={weights}"])


@pytest.mark.parametrize("chosen,rejected,at_step_end", [
    (" 1+1=2\n#### 2", " 1+1=2,0+0=0\n#### 2", True),  # one stops where the other takes another step
    (" 5+5=10,7+1=8\n#### 80", " 5+5=10,7+2=9\n#### 90", False),  # a digit differs inside a step
    (" 9+9=1,", " 9+9=18,", True),  # one closes its step early
    (" 1+1=2\n#### 2", " 1+1=2\n#### 22", False),  # the answers differ; neither is at a step end
    (" 3+3=6", " 4+3=7", False),
])
def test_pairs_that_first_differ_at_a_step_end(chosen, rejected, at_step_end):
    from selfimprove.stages.pairs import differ_first_at_step_end

    assert differ_first_at_step_end(chosen, rejected, [",", "\n"]) is at_step_end
    assert differ_first_at_step_end(rejected, chosen, [",", "\n"]) is at_step_end
    assert differ_first_at_step_end(chosen, rejected, []) is False


def test_pairs_stage_drops_pairs_differing_at_a_step_end(tmp_path):
    from types import SimpleNamespace

    from omegaconf import OmegaConf

    from selfimprove.stages.pairs import PairsConfig
    from selfimprove.rundir import read_jsonl, write_jsonl
    from selfimprove.stages import StageContext, StageError, get_stage
    from selfimprove.tasks.arithmetic import Arithmetic
    from selfimprove.tracking import Console

    def judged(pid, texts_scores):
        return [{"prompt_id": pid, "sample_id": i, "prompt": f"Q: {pid}\nA:", "text": t, "scores": [s]}
                for i, (t, s) in enumerate(texts_scores)]

    stops = judged("10+5", [(" 0+5=5,1+0=1\n#### 15", 5.0), (" 0+5=5\n#### 5", 2.0)])
    digit = judged("12+5", [(" 2+5=7,1+0=1\n#### 17", 5.0), (" 2+5=8,1+0=1\n#### 18", 3.0)])

    def run(rows, out):
        write_jsonl(tmp_path / f"{out}.jsonl", rows)
        ctx = StageContext(name="pairs", iteration=1, seed=0,
                           cfg=OmegaConf.structured(PairsConfig(drop_at_step_ends=[",", "\n"])),
                           task=Arithmetic(SimpleNamespace()), model_cfg=None, backend_cfg=None, device="cpu",
                           inputs={"judged": str(tmp_path / f"{out}.jsonl")}, out=tmp_path / out,
                           ui=Console(quiet=True))
        ctx.out.mkdir()
        return ctx, get_stage("pairs").fn(ctx)

    ctx, result = run(stops + digit, "both")
    assert result.metrics["pairs"] == 1 and result.metrics["dropped_at_step_end"] == 1
    assert [p["prompt_id"] for p in read_jsonl(ctx.out / "pairs.jsonl")] == ["12+5"]
    with pytest.raises(StageError, match="1 first differed at a step end"):
        run(stops, "stops")


def test_own_answer_pairs_take_the_first_right_and_first_wrong_answer():
    from types import SimpleNamespace

    from selfimprove.stages.judge_quality import own_answer_pairs
    from selfimprove.tasks.arithmetic import Arithmetic, solution

    task = Arithmetic(SimpleNamespace())
    problems = [{"id": "a", "question": "12+5", "answer": "17"}, {"id": "b", "question": "3+4", "answer": "7"},
                {"id": "c", "question": "9+9", "answer": "18"}]
    prompts = [task.prompt(p) for p in problems]
    answers = [[solution(12, 6), solution(12, 5), solution(12, 4), solution(12, 5) + " "],  # wrong, right, wrong
               [solution(3, 4)] * 3,                    # all right: no pair
               [solution(9, 8), "no answer"]]           # all wrong: no pair
    assert own_answer_pairs(task, problems, prompts, answers) == [
        {"id": "a", "prompt": prompts[0], "good": solution(12, 5), "bad": solution(12, 6)}]


def test_oracle_pairwise_accuracy_over_own_candidates():
    from selfimprove.stages.judge import oracle_pairwise

    def oracle(prompt, text):
        return text.startswith("right")

    rows = [{"prompt_id": "p", "prompt": "q", "text": "right1", "score": 4.0},
            {"prompt_id": "p", "prompt": "q", "text": "wrong1", "score": 2.0},
            {"prompt_id": "p", "prompt": "q", "text": "wrong2", "score": 4.0},   # tie with right1: disagreement
            {"prompt_id": "p", "prompt": "q", "text": "wrong1", "score": 2.0},   # same text: counted once
            {"prompt_id": "r", "prompt": "q2", "text": "right2", "score": None},  # unscored: left out
            {"prompt_id": "r", "prompt": "q2", "text": "wrong3", "score": 1.0}]
    assert oracle_pairwise(rows, oracle) == {"oracle_pairs": 2, "oracle_pairwise_accuracy": 0.5}
    assert oracle_pairwise(rows, lambda prompt, text: None) == {}  # a task that cannot tell: no metric


def test_own_samples_of_one_is_refused():
    with pytest.raises(ConfigError, match="judge_quality.own_samples must be 0 .* or >= 2"):
        compose(["recipe=self_rewarding", "judge_quality.own_samples=1"])
