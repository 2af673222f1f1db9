"""V-STaR's pieces on real files and a real tiny model: the verifier buffer, correct x incorrect
pairs with caps, the clear error when there is nothing to contrast, verifier scoring, and
Best-of-k returning the verifier's top candidate."""
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from selfimprove.config import ModelConfig
from selfimprove.stages.buffer import BufferConfig
from selfimprove.stages.evaluate import BestOfKConfig
from selfimprove.stages.verifier_pairs import VerifierPairsConfig
from selfimprove.rundir import read_jsonl, write_jsonl
from selfimprove.stages import StageContext, StageError, get_stage
from selfimprove.best_of_k_eval import candidate_metrics
from selfimprove.stages.verifier_pairs import build_pairs
from selfimprove.tasks.arithmetic import Arithmetic
from tests.helpers import TINY, stage_context



def row(pid, text, reward):
    return {"prompt_id": pid, "prompt": f"Q: {pid}\nA:", "text": text, "reward": reward}


def context(tmp_path: Path, name, cfg, inputs) -> StageContext:
    out = tmp_path / name
    out.mkdir()
    return stage_context(name, cfg, out, task=Arithmetic(None), inputs=inputs)


# ----------------------------------------------------------------------------- pairs
def test_pairs_are_correct_x_incorrect_of_the_same_problem():
    rows = [row("a", "good1", 1.0), row("a", "good2", 1.0), row("a", "bad1", 0.0), row("a", "bad2", 0.0),
            row("a", "bad3", 0.0), row("b", "good", 1.0), row("c", "bad", 0.0), row("d", "x", None)]
    pairs = build_pairs(rows, 1.0, None, True, seed=0)
    assert {(p["prompt_id"], p["chosen"], p["rejected"]) for p in pairs} == {
        ("a", g, b) for g in ("good1", "good2") for b in ("bad1", "bad2", "bad3")}  # b, c: one side; d: unscored
    assert all(p["prompt"] == "Q: a\nA:" for p in pairs)


def test_pairs_are_capped_per_problem_and_deterministic():
    rows = [row(pid, f"g{i}", 1.0) for pid in ("a", "b") for i in range(5)]
    rows += [row(pid, f"w{i}", 0.0) for pid in ("a", "b") for i in range(4)] + [row("c", "g", 1.0), row("c", "w", 0.0)]
    capped = build_pairs(rows, 1.0, 7, True, seed=3)
    counts = {pid: sum(p["prompt_id"] == pid for p in capped) for pid in "abc"}
    assert counts == {"a": 7, "b": 7, "c": 1}  # 20 pairs each for a and b, capped; c is under the cap
    assert len({(p["prompt_id"], p["chosen"], p["rejected"]) for p in capped}) == 15  # drawn without replacement
    assert capped == build_pairs(rows, 1.0, 7, True, seed=3)
    assert capped != build_pairs(rows, 1.0, 7, True, seed=4)


def test_duplicate_texts_count_once_unless_dedup_is_off():
    rows = [row("a", "good", 1.0), row("a", "good", 1.0), row("a", "bad", 0.0), row("a", "bad", 0.0)]
    assert len(build_pairs(rows, 1.0, None, True, 0)) == 1
    assert len(build_pairs(rows, 1.0, None, False, 0)) == 4


def test_no_incorrect_sample_is_a_stage_error_with_counts(tmp_path):
    write_jsonl(tmp_path / "buffer.jsonl", [row("a", "good", 1.0), row("b", "good", 1.0), row("b", "good2", 1.0)])
    ctx = context(tmp_path, "verifier_pairs", VerifierPairsConfig(), {"buffer": str(tmp_path / "buffer.jsonl")})
    with pytest.raises(StageError, match="no incorrect sample") as err:
        get_stage("verifier_pairs").fn(ctx)
    assert "correct_samples=3, incorrect_samples=0, problems=2, problems_with_both=0" in str(err.value)


def test_buffer_appends_every_sample_to_the_previous_buffer(tmp_path):
    write_jsonl(tmp_path / "seed.jsonl", [{"id": "seed-0", "question": "2+3", "answer": "5", "difficulty": 1,
                                           "solution": " 2+3=5\n#### 5"}])
    write_jsonl(tmp_path / "s1.jsonl", [row("a", "good", 1.0), row("a", "bad", 0.0)])
    write_jsonl(tmp_path / "s2.jsonl", [row("a", "good", 1.0), row("b", "bad", 0.0)])
    ctx = context(tmp_path, "b1", BufferConfig(),
                  {"scored": str(tmp_path / "s1.jsonl"), "previous": None, "seed": str(tmp_path / "seed.jsonl")})
    first = get_stage("buffer").fn(ctx)
    path1 = ctx.out / first.artifacts["verifier_buffer"]
    rows1 = read_jsonl(path1)
    assert rows1[0]["source"] == "seed" and rows1[0]["prompt"] == "Q: 2+3\nA:"
    assert rows1[0]["reward"] == 1.0 and [r["text"] for r in rows1[1:]] == ["good", "bad"]
    ctx2 = context(tmp_path, "b2", BufferConfig(),
                   {"scored": str(tmp_path / "s2.jsonl"), "previous": str(path1), "seed": str(tmp_path / "seed.jsonl")})
    second = get_stage("buffer").fn(ctx2)
    rows2 = read_jsonl(ctx2.out / second.artifacts["verifier_buffer"])
    assert rows2[:3] == rows1 and len(rows2) == 5  # appended; the seed rows are not added twice
    m = second.metrics
    assert (m["rows"], m["correct"], m["incorrect"], m["added"], m["problems_with_both"]) == (5, 3, 2, 2, 1)


# ----------------------------------------------------------------------------- verifier scores, Best-of-k
def test_best_of_k_returns_the_verifiers_top_candidate():
    """One problem, 4 candidates: three agree on a wrong answer, one is right. With k = n the
    estimate is exactly the correctness of the top-scored candidate."""
    def candidates(scores):
        answers = ["9", "9", "9", "7"]
        return [{"answer": a, "gold": "7", "correct": a == "7", "verifier_score": s} for a, s in zip(answers, scores)]

    likes_right = candidate_metrics([candidates([-5.0, -4.0, -6.0, -1.0])], [4], with_scores=True)
    likes_wrong = candidate_metrics([candidates([-5.0, -0.5, -6.0, -1.0])], [4], with_scores=True)
    assert likes_right["verifier@4"] == 1.0 and likes_wrong["verifier@4"] == 0.0
    assert likes_right["majority@4"] == 0.0 and likes_right["oracle@4"] == 1.0 and likes_right["pass@1"] == 0.25
    assert likes_right["verifier_pair_accuracy"] == 1.0 and likes_wrong["verifier_pair_accuracy"] == pytest.approx(2 / 3, abs=1e-4)
    assert "verifier@4" not in candidate_metrics([candidates([0.0] * 4)], [4], with_scores=False)


def test_verifier_log_likelihood_is_the_sum_over_the_solution_tokens(tmp_path):
    from selfimprove.models import load_model, load_tokenizer
    from selfimprove.models.tiny import save_tiny
    from selfimprove.verifier import completion_logprobs, verifier_scores

    path = save_tiny(TINY, tmp_path / "v", seed=0)
    tok, model = load_tokenizer(str(path)), load_model(str(path))
    prompts, texts = ["Q: 12+5\nA:", "Q: 1+1\nA:", "Q: 12+5\nA:"], [" 2+5=7,1+0=1\n#### 17", " 1+1=2\n#### 2", " x"]
    batched = completion_logprobs(model, tok, prompts, texts, batch_size=2)
    for (p, t), (logp, n) in zip(zip(prompts, texts), batched):  # one at a time, no padding
        prompt_ids = tok(p)["input_ids"]
        ids = torch.tensor([tok(p + t + tok.eos_token)["input_ids"]])
        with torch.no_grad():
            lp = model(ids).logits[0, :-1].log_softmax(-1).gather(1, ids[0, 1:, None])[:, 0]
        assert n == len(t) + 1  # one token per character, plus the end of sequence
        assert logp == pytest.approx(lp[len(prompt_ids) - 1:].sum().item(), abs=1e-4)
    cfg = OmegaConf.structured(BestOfKConfig(batch_size=2))
    mc = OmegaConf.structured(ModelConfig(tiny=TINY))
    assert verifier_scores(cfg, mc, "cpu", str(path), None, prompts, texts) == pytest.approx([b[0] for b in batched])
    cfg.score = "implicit_reward"  # the verifier against itself as the reference: zero reward
    assert verifier_scores(cfg, mc, "cpu", str(path), str(path), prompts, texts) == [0.0, 0.0, 0.0]
    cfg.score = "mean_logprob"
    assert verifier_scores(cfg, mc, "cpu", str(path), None, prompts, texts)[2] == pytest.approx(batched[2][0] / 3)


# ----------------------------------------------------------------------------- config
@pytest.mark.parametrize("override,expected", [
    (["evaluate.best_of.k=[4,32]"], r"best_of.k has \[32\] but only evaluate.num_samples=16 candidates"),
    (["evaluate.best_of.score=likelihood"], "best_of.score must be logprob, mean_logprob or implicit_reward"),
    (["stages=[generate,score,evaluate]", "last_iteration_only=[]"], "no dpo stage in the stage lists publishes it"),
    (["last_iteration_only=[verifier,nope]"], r"last_iteration_only lists \['nope'\]"),
    (["verifier_pairs.max_pairs_per_problem=0"], "max_pairs_per_problem must be >= 1 or null"),
])
def test_vstar_bad_input_is_rejected_at_startup(override, expected):
    from selfimprove.config.compose import compose
    from selfimprove.config import ConfigError

    with pytest.raises(ConfigError, match=expected):
        compose(["recipe=vstar", *override])


def test_verifier_stages_run_in_the_last_iteration_only():
    from selfimprove.config.compose import compose
    from selfimprove.pipeline import stage_plan

    (cfg,) = compose(["recipe=vstar"])
    plan = stage_plan(cfg)
    assert [it for it, s in plan if s == "verifier"] == [3] and [it for it, s in plan if s == "train"] == [1, 2, 3]
    (every,) = compose(["recipe=vstar", "last_iteration_only=[]"])
    assert [it for it, s in stage_plan(every) if s == "verifier"] == [1, 2, 3]
