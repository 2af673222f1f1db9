"""Scorers, B-STaR monitors and the no-gold guarantee of self-consistency, on hand-made samples."""
from types import SimpleNamespace

import pytest

from selfimprove.rundir import read_jsonl, write_jsonl
from selfimprove.stages import StageContext, get_stage
from selfimprove.stages.score import SCORERS, monitors
from selfimprove.tasks.arithmetic import Arithmetic

TASK = Arithmetic(SimpleNamespace())


def sample(pid, answer, text=None):
    return {"prompt_id": pid, "text": text or f" ...\n#### {answer}"}


def test_majority_scorer_uses_agreement_not_gold():
    rows = [sample("a", 5), sample("a", 5, "x\n#### 5"), sample("a", 6), sample("b", 1), sample("b", 2),
            sample("b", 3), sample("c", "zz")]
    cfg = SimpleNamespace(min_agreement=0.5)
    assert SCORERS["majority"](rows, {}, TASK, cfg) == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    cfg = SimpleNamespace(min_agreement=0.3)  # b: 1/3 agree on "1" (first seen)
    assert SCORERS["majority"](rows, {}, TASK, cfg)[3:6] == [1.0, 0.0, 0.0]


def test_monitors_balance_score_by_hand():
    def r(pid, text, reward, correct):
        return {"prompt_id": pid, "text": text, "reward": reward, "correct": correct}

    rows = [r("p", "a", 1, True), r("p", "a", 1, True), r("p", "b", 1, False), r("p", "c", 0, False),
            r("q", "d", 0, False), r("q", "e", 0, True), r("q", "f", 0, False), r("q", "g", 0, False)]
    m = monitors(rows, threshold=1.0, ks=[1, 4], n_star=2)
    # p: distinct selected {a, b}, one correct -> min(1/2, 1) * 1/2 = 0.25; q: nothing selected -> 0
    assert m["balance"] == pytest.approx(0.125)
    assert m["selection_precision"] == pytest.approx(2 / 3, abs=1e-3)
    assert m["selection_recall"] == pytest.approx(2 / 3, abs=1e-3)
    assert m["solved_fraction"] == 1.0
    assert m["distinct_correct"] == pytest.approx(1.0)  # p: {a}, q: {e}
    assert m["pass@1"] == pytest.approx((2 / 4 + 1 / 4) / 2)
    assert m["pass@4"] == 1.0


def run_stage(kind, section, inputs, out, seed=0):
    out.mkdir(parents=True, exist_ok=True)
    ctx = StageContext(name=kind, iteration=1, seed=seed, cfg=section, task=TASK, model_cfg=None, backend_cfg=None,
                       device="cpu", inputs=inputs, out=out, ui=None)
    return get_stage(kind).fn(ctx)


def score_and_filter(tmp_path, gold_shift):
    problems = [{"id": f"t{i}", "question": f"{i}+{i}", "answer": str(2 * i + gold_shift), "difficulty": 1}
                for i in range(6)]
    samples = [{"prompt_id": f"t{i}", "sample_id": j, "prompt": f"Q: {i}+{i}\nA:",
                "text": f" ...\n#### {2 * i + (j % 2 if i % 3 else 0)}"} for i in range(6) for j in range(4)]
    write_jsonl(tmp_path / "problems.jsonl", problems)
    write_jsonl(tmp_path / "samples.jsonl", samples)
    score_cfg = SimpleNamespace(scorer="majority", min_agreement=0.5, threshold=1.0, pass_k=[1], n_star=8)
    res = run_stage("score", score_cfg, {"samples": str(tmp_path / "samples.jsonl"),
                                         "problems": str(tmp_path / "problems.jsonl")}, tmp_path / "score")
    filter_cfg = SimpleNamespace(min_reward=1.0, max_per_problem=None, dedup=True, fewshot_exemplars=True)
    run_stage("filter", filter_cfg, {"scored": str(tmp_path / "score/scored.jsonl"), "rationalized": None,
                                     "tuned": None}, tmp_path / "filter")
    return res.metrics, read_jsonl(tmp_path / "filter/train_data.jsonl")


def test_self_consistency_training_data_does_not_depend_on_gold(tmp_path):
    """Score + filter with the majority scorer give the same training data whatever the gold answers."""
    metrics, data = score_and_filter(tmp_path / "true_gold", 0)
    wrong_metrics, wrong_data = score_and_filter(tmp_path / "wrong_gold", 1000)
    assert data == wrong_data and len(data) > 0
    # problems 0 and 3 agree unanimously, the others split 2/2 (still >= 0.5 agreement)
    assert metrics["pseudo_label_accuracy"] == 1.0 and wrong_metrics["pseudo_label_accuracy"] == 0.0
