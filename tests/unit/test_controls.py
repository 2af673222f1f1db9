"""The control recipes' one stage option (`generate.source=gold`) and their budgets, without
training: the slow end-to-end runs are in tests/slow/test_controls.py."""
from types import SimpleNamespace

import pytest
from omegaconf import OmegaConf

from selfimprove.config.compose import compose
from selfimprove.config import ConfigError
from selfimprove.stages.generate import GenerateConfig
from selfimprove.rundir import read_jsonl, write_jsonl
from selfimprove.stages import StageContext, StageError, get_stage
from selfimprove.training.fit import planned_steps
from selfimprove.tasks import Task
from selfimprove.tasks.arithmetic import Arithmetic
from selfimprove.tracking import Console


def _ctx(tmp_path, task, problems):
    write_jsonl(tmp_path / "train.jsonl", problems)
    cfg = OmegaConf.structured(GenerateConfig(source="gold", num_problems=3))
    (tmp_path / "out").mkdir()
    return StageContext(name="generate", iteration=1, seed=11, cfg=cfg, task=task, model_cfg=None, backend_cfg=None,
                        device="cpu", inputs={"model": None, "problems": str(tmp_path / "train.jsonl")},
                        out=tmp_path / "out", ui=Console(quiet=True))


def test_gold_source_writes_a_rewarded_worked_solution_per_drawn_problem(tmp_path):
    task = Arithmetic(SimpleNamespace(name="arithmetic"))
    problems = [{"id": f"t{i}", "question": f"{i * 37}+{i * 5}", "answer": str(i * 42)} for i in range(6)]
    ctx = _ctx(tmp_path, task, problems)
    result = get_stage("generate").fn(ctx)
    rows = read_jsonl(ctx.out / "samples.jsonl")
    assert result.metrics == {"problems": 3, "samples": 3, "gold": True}
    by_id = {p["id"]: p for p in problems}
    assert all(task.reward(r["text"], by_id[r["prompt_id"]]) == 1.0 for r in rows)
    assert rows[0]["text"].startswith(" ") and "\n#### " in rows[0]["text"]  # the seed examples' format


def test_gold_source_refuses_a_task_without_worked_solutions(tmp_path):
    class NoGold(Task):
        cfg = SimpleNamespace(name="prompts")

        def prompt(self, problem, hint=False):
            return problem["question"]

    ctx = _ctx(tmp_path, NoGold(), [{"id": "a", "question": "hi", "answer": "1"}])
    with pytest.raises(StageError, match="source=gold needs a gold worked solution.*'prompts' has none"):
        get_stage("generate").fn(ctx)


@pytest.mark.parametrize("override,expected", [
    ("generate.source=teacher", "generate.source must be model .* or gold"),
    ("generate.k=4", "generate.source=gold writes one gold solution per problem: set generate.k=1"),
])
def test_bad_gold_settings_are_refused(override, expected):
    with pytest.raises(ConfigError, match=expected):
        compose(["recipe=gold_sft", override])


def test_train_longer_adds_as_many_steps_as_star_trains():
    (star,) = compose(["recipe=star"])
    (longer,) = compose(["recipe=train_longer"])
    total = [sum(planned_steps(cfg.train, i) for i in range(1, cfg.iterations + 1)) for cfg in (star, longer)]
    assert total[0] == total[1] == 1610  # 300 + 360 + 432 + 518
    assert longer.train.init == "policy" and longer.train.data == "seed_data"
