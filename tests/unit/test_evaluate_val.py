"""The evaluate stage also scores the validation split (greedy, `val_accuracy`), which sweeps and
choices read; the test split stays for reporting. Real tiny model, real batched sampling."""
from types import SimpleNamespace

import pytest
from omegaconf import OmegaConf

from selfimprove.config import HFBackendConfig
from selfimprove.stages.evaluate import EvaluateConfig
from selfimprove.rundir import read_jsonl, write_jsonl
from selfimprove.stages import get_stage
from selfimprove.tasks.arithmetic import Arithmetic
from tests.helpers import TINY, stage_context



@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from selfimprove.models.tiny import save_tiny

    return save_tiny(TINY, tmp_path_factory.mktemp("m") / "tiny", seed=0)


def run_evaluate(tmp_path, model, gold=True, **options):
    problems = lambda split, n: [{"id": f"{split}-{i}", "question": f"{i}+{i + 3}",  # noqa: E731
                                  "answer": str(2 * i + 3) if gold else None} for i in range(n)]
    write_jsonl(tmp_path / "test.jsonl", problems("test", 6))
    write_jsonl(tmp_path / "val.jsonl", problems("val", 4))
    cfg = OmegaConf.structured(EvaluateConfig(num_samples=0, max_new_tokens=12, **options))
    kind = get_stage("evaluate")
    roles = kind.inputs(cfg)
    paths = {"policy": str(model), "test": str(tmp_path / "test.jsonl"), "val": str(tmp_path / "val.jsonl")}
    out = tmp_path / "out"
    out.mkdir()
    ctx = stage_context("evaluate", cfg, out, seed=5, task=Arithmetic(SimpleNamespace()),
                        backend_cfg=OmegaConf.structured(HFBackendConfig(batch_size=4)),
                        inputs={role: paths[art.rstrip("?")] for role, art in roles.items()})
    return roles, kind.fn(ctx), out


def test_evaluate_scores_the_val_split_apart_from_the_test_split(tmp_path, model):
    roles, result, out = run_evaluate(tmp_path, model)
    assert roles["val"] == "val?"  # optional: a task without a val split still evaluates
    val_rows, test_rows = read_jsonl(out / "val_eval.jsonl"), read_jsonl(out / "eval.jsonl")
    assert [r["prompt_id"] for r in val_rows] == [f"val-{i}" for i in range(4)]
    assert {r["prompt_id"] for r in test_rows} == {f"test-{i}" for i in range(6)}
    assert result.metrics["val_problems"] == 4 and result.metrics["problems"] == 6
    assert result.metrics["val_accuracy"] == round(sum(r["correct"] for r in val_rows) / 4, 4)
    assert result.artifacts == {"eval": "eval.jsonl", "val_eval": "val_eval.jsonl"}


def test_no_val_metric_when_turned_off_or_without_gold_answers(tmp_path, model):
    roles, result, out = run_evaluate(tmp_path / "off", model, val_split=None)
    assert "val" not in roles and "val_accuracy" not in result.metrics and not (out / "val_eval.jsonl").exists()
    _, result, _ = run_evaluate(tmp_path / "nogold", model, gold=False)  # task=prompts: val = test, no answers
    assert "val_accuracy" not in result.metrics and "accuracy" not in result.metrics
