"""Easy-to-hard (recipe=easy_to_hard): the reversed-addition task, NoPE, the filters, the mixture,
the monitors and the bad-input messages."""
import random

import pytest
import torch
from omegaconf import OmegaConf

from selfimprove.config.compose import compose
from selfimprove.config import ConfigError, ReverseAdditionTaskConfig, TinyModelConfig
from selfimprove.easy_to_hard import agreement, length_filter, longest_at, mixture, trained_length
from selfimprove.tasks import TaskDataError
from selfimprove.tasks.reverse_addition import ReverseAddition, reverse_target


def task(**kw):
    return ReverseAddition(OmegaConf.structured(ReverseAdditionTaskConfig(**kw)))


def test_format_is_the_papers_reversed_and_padded_addition():
    t = task()
    # a = 123, b = 456: prompt "321+654=", target reverse(579) padded to 4 digits
    p = {"question": "321+654", "difficulty": 3}
    assert t.prompt(p) == "321+654=" and t.gold(p) == "9750" == reverse_target(123, 456)
    assert reverse_target(999, 1) == "0001" and reverse_target(5, 7) == "21" and reverse_target(0, 0) == "00"
    assert t.reward("9750", {"answer": "9750"}) == 1.0
    assert t.reward("975", {"answer": "9750"}) == 0.0 and t.reward("97x0", {"answer": "9750"}) == 0.0


def test_problems_of_any_length_with_and_without_gold():
    t = task()
    for n in (1, 9, 40):
        with_gold = t.problems(n, 50, seed=3, gold=True)
        without = t.problems(n, 50, seed=3, gold=False)
        assert [p["question"] for p in with_gold] == [p["question"] for p in without]  # same problems
        assert all("answer" not in p for p in without)
        for p in with_gold:
            a, b = p["question"].split("+")
            assert len(a) == len(b) == n == p["difficulty"]
            assert p["answer"] == reverse_target(int(a[::-1]), int(b[::-1]))
            assert len(p["answer"]) == n + 1
    assert t.problems(9, 5, seed=1, gold=False) != t.problems(9, 5, seed=2, gold=False)


def test_seed_split_covers_lengths_one_to_start_length_only():
    splits = task(start_length=5, seed_examples=2000).splits()
    lengths = {p["difficulty"] for p in splits["seed"]}
    assert lengths == {1, 2, 3, 4, 5}
    assert all(p["solution"] == p["answer"] for p in splits["seed"])
    with pytest.raises(TaskDataError, match="start_length must be >= 1"):
        task(start_length=0).splits()


def test_corrupted_gold_is_wrong_only_above_the_given_length():
    t, bad = task(), task(corrupt_gold_above=8)
    for n in (3, 8, 9, 12):
        for p in t.problems(n, 20, seed=0, gold=False):
            assert (t.gold(p) == bad.gold(p)) == (n <= 8)


def test_nope_rotary_is_the_identity_and_attention_ignores_order():
    from selfimprove.models.tiny import build_model, build_tokenizer

    tok = build_tokenizer()
    # one layer: deeper layers see earlier tokens' states, which depend on their own prefixes
    small = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                 max_position_embeddings=64)
    nope = build_model(OmegaConf.structured(TinyModelConfig(nope=True, **small)), tok, seed=0).eval()
    rope = build_model(OmegaConf.structured(TinyModelConfig(nope=False, **small)), tok, seed=0).eval()
    x = torch.zeros(1, 40, 16)
    cos, sin = nope.model.rotary_emb(x, torch.arange(40)[None])
    assert torch.equal(cos, torch.ones_like(cos)) and torch.equal(sin, torch.zeros_like(sin))
    # Without positions, causal attention at the last token sees its prefix as a set: permuting the
    # earlier tokens leaves the last logits unchanged. With RoPE they change.
    ids = torch.tensor([tok.convert_tokens_to_ids(list("12345+98765="))])
    perm = torch.cat([ids[:, :-1][:, torch.tensor(random.Random(0).sample(range(ids.shape[1] - 1), ids.shape[1] - 1))],
                      ids[:, -1:]], dim=1)
    assert not torch.equal(ids, perm)
    with torch.no_grad():
        assert torch.allclose(nope(ids).logits[0, -1], nope(perm).logits[0, -1], atol=1e-5)
        assert not torch.allclose(rope(ids).logits[0, -1], rope(perm).logits[0, -1], atol=1e-5)


def test_nope_survives_save_and_load(tmp_path):
    from selfimprove.models import load_model
    from selfimprove.models.tiny import save_tiny

    cfg = OmegaConf.structured(TinyModelConfig(nope=True, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                               intermediate_size=64))
    m = load_model(save_tiny(cfg, tmp_path / "m", seed=0))
    assert torch.equal(m.model.rotary_emb.inv_freq, torch.zeros_like(m.model.rotary_emb.inv_freq))


def test_schedule(tmp_path):
    from types import SimpleNamespace

    from selfimprove.easy_to_hard import scheduled_length

    assert trained_length(8, 1, 0) == 8 and trained_length(8, 2, 3) == 14
    task_cfg = SimpleNamespace(start_length=8, lengths_per_round=2)
    assert scheduled_length(None, task_cfg, 3) == 14  # no self_label stage yet: the standard schedule
    (tmp_path / "schedule.json").write_text('{"lengths": [9, 10, 11], "trained_length": 11}')
    assert scheduled_length(tmp_path / "schedule.json", task_cfg, 3) == 11  # the latest round's record wins


def test_length_filter_drops_labels_shorter_than_the_full_length_of_their_length_and_run_ons():
    labels = ["1234", "1234", "123", "12", "", "12345", "99999", "9999", "99999"]
    lengths = [3, 3, 3, 3, 3, 3, 4, 4, 4]
    assert length_filter(labels, lengths, 1) == [True, True, False, False, False, False, True, False, True]
    assert length_filter(labels, lengths, 2) == [True, True, True, False, False, False, True, True, True]
    assert length_filter(labels, lengths, 0) == [True, True, True, True, False, True, True, True, True]  # off
    # one label that runs on must not drop the others (it did when the longest label set the bar)
    assert length_filter(["1" * 10] * 1999 + ["1" * 11], [9] * 2000, 1) == [True] * 1999 + [False]
    assert length_filter(["12", "123"], [3, 3], 1) == [False, True]  # a tie: the longer is the full length


def test_agreement():
    assert agreement("12", ["12", "12", "13", "12"]) == 0.75 and agreement("12", []) == 1.0


def test_mixture_shares_follow_the_paper():
    original = [{"round": 0, "i": i} for i in range(100)]
    older = {1: [{"round": 1}] * 10, 2: [{"round": 2}] * 10}
    newest = [{"round": 3}] * 10
    rows = mixture(original, older, newest, 20000, 0.5, 8.0, seed=0)
    share = lambda r: sum(x["round"] == r for x in rows) / len(rows)  # noqa: E731
    assert len(rows) == 20000 and share(3) == 0.5
    # the other half: original weight 8, each older round weight 1 -> 0.4, 0.05, 0.05
    assert abs(share(0) - 0.4) < 0.015 and abs(share(1) - 0.05) < 0.01 and abs(share(2) - 0.05) < 0.01
    control = mixture(original, {}, [], 100, 0.5, 8.0, seed=0)
    assert all(x["round"] == 0 for x in control)  # no self-labels: all original
    again = [mixture(original, older, newest, 50, 0.5, 8.0, seed=1) for _ in range(2)]
    assert again[0] == again[1]


def test_longest_at_target():
    assert longest_at({5: 1.0, 6: 0.995, 7: 0.98, 8: 1.0}, 0.99) == 6
    assert longest_at({5: 0.5, 6: 1.0}, 0.99) is None


def test_recipe_composes_with_nope_and_the_reversed_task():
    (cfg,) = compose(["recipe=easy_to_hard"])
    assert cfg.task.name == "reverse_addition" and cfg.model.tiny.nope and cfg.train.init == "policy"
    assert cfg.mix.rows == cfg.train.steps * cfg.train.batch_size


@pytest.mark.parametrize("override,expected", [
    (["task.start_length=0"], "task.start_length must be >= 1 .*task.start_length=8"),
    (["self_label.vote_threshold=0"], r"self_label.vote_threshold .* must be in \(0, 1\]"),
    (["self_label.model_vote_threshold=1.5"], r"self_label.model_vote_threshold .* must be in \(0, 1\]"),
    (["iterations=40"], "reaches 53-digit problems .*model.tiny.max_position_embeddings=128. Raise it with "
                        "model.tiny.max_position_embeddings=164"),
    (["iterations=40"], "trains on 48-digit problems .*train.max_length=128 would cut them off; "
                        "set train.max_length=149"),
    (["mix.newest_share=0"], r"mix.newest_share must be in \(0, 1\]"),
    (["train.replicas=0"], "train.replicas must be >= 1"),
])
def test_bad_input_says_what_to_write(override, expected):
    with pytest.raises(ConfigError, match=expected):
        compose(["recipe=easy_to_hard", *override])


def test_heatmap_grid_from_a_runs_metrics(tmp_path):
    import json

    from selfimprove.analysis.plots import heatmap, length_grid
    from selfimprove.analysis.runs import load_run

    run = tmp_path / "r"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"recipe": "easy_to_hard", "status": "finished"}))
    rows = [{"iteration": 0, "stage": "evaluate_lengths", "accuracy_d3": 1.0, "accuracy_d4": 0.5},
            {"iteration": 1, "stage": "self_label", "kept": 3},
            {"iteration": 1, "stage": "evaluate_lengths", "accuracy_d4": 1.0, "accuracy_d5": 0.25}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    its, lengths, grid = length_grid(load_run(run))
    assert its == [0, 1] and lengths == [3, 4, 5] and grid == [[1.0, 0.5, None], [None, 1.0, 0.25]]
    heatmap([load_run(run)], str(tmp_path / "h.png"))
    assert (tmp_path / "h.png").stat().st_size > 1000


def test_length_stages_refuse_a_task_without_problems_of_any_length():
    from types import SimpleNamespace

    from selfimprove.easy_to_hard import require_length_task
    from selfimprove.stages import StageError
    from selfimprove.tasks.arithmetic import Arithmetic

    with pytest.raises(StageError, match="self_label needs a task that generates problems of any length"):
        require_length_task(Arithmetic(SimpleNamespace(name="arithmetic")), "self_label")


def test_accelerated_schedule_takes_every_solved_length_after_the_next():
    from selfimprove.easy_to_hard import accelerated_lengths

    acc = {9: 1.0, 10: 0.995, 11: 0.99, 12: 0.5, 13: 1.0}
    asked = []

    def accuracy_at(n):
        asked.append(n)
        return acc[n]

    fits = lambda n: True  # noqa: E731
    assert accelerated_lengths(8, accuracy_at, 0.99, 8, fits) == [9, 10, 11]  # 12 misses: stop there, 13 unseen
    assert sorted(asked) == [9, 10, 11, 12]  # each length measured once
    assert accelerated_lengths(8, lambda n: 0.0, 0.99, 8, fits) == [9]  # always at least L+1
    assert accelerated_lengths(8, lambda n: 1.0, 0.99, 3, fits) == [9, 10, 11]  # at most max_lengths
    assert accelerated_lengths(8, lambda n: 1.0, 0.99, 8, lambda n: n <= 10) == [9, 10]  # the model's positions
    acc2 = {9: 0.5, 10: 1.0}
    assert accelerated_lengths(8, acc2.__getitem__, 0.99, 8, fits) == [9]  # L+1 unsolved: the standard step
