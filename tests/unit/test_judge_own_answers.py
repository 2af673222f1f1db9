"""judge_quality's own-answer pairs through the real stage: a real tiny model samples answers to
held-out problems, right and wrong ones are paired and judged by the same model, and the
metrics and the pairs file come out. The task is the built-in one with a reward the untrained
model meets about half the time (an even-length answer), so that pairs exist at all."""
from omegaconf import OmegaConf

from selfimprove.config.compose import compose
from selfimprove.pipeline import _resolved
from selfimprove.rundir import read_jsonl, write_jsonl
from selfimprove.stages import StageContext, get_stage
from selfimprove.tasks import build_task
from selfimprove.tracking import Console


def test_judge_quality_pairs_and_judges_the_models_own_answers(tmp_path):
    from selfimprove.models.tiny import save_tiny

    (cfg,) = compose(["recipe=self_rewarding", "profile=debug", "judge_quality.own_samples=4",
                      "generate.max_new_tokens=8", "judge.max_new_tokens=8"])
    task = build_task(cfg.task)
    task.reward = lambda text, problem: float(len(text) % 2 == 0)  # right about half the time
    task.judge_pairs = lambda problems, seed: []  # only the own-answer pairs here
    model = save_tiny(OmegaConf.to_object(cfg.model.tiny), tmp_path / "model", seed=0)
    problems = [{"id": f"t{i}", "question": f"{i}+{i}", "answer": str(2 * i)} for i in range(6)]
    write_jsonl(tmp_path / "test.jsonl", problems)
    (tmp_path / "out").mkdir()
    ctx = StageContext(name="judge_quality", iteration=0, seed=3, cfg=_resolved(cfg.judge_quality), task=task,
                       model_cfg=cfg.model, backend_cfg=cfg.backend, device="cpu",
                       inputs={"model": str(model), "problems": str(tmp_path / "test.jsonl")}, out=tmp_path / "out",
                       ui=Console(quiet=True))
    metrics = get_stage("judge_quality").fn(ctx).metrics
    rows = read_jsonl(tmp_path / "out" / "own_pairs.jsonl")
    assert metrics["own_problems"] == 6 and metrics["own_pairs"] == len(rows) > 0
    for r in rows:
        assert len(r["good"]) % 2 == 0 and len(r["bad"]) % 2 == 1  # one right, one wrong, by the task's check
        assert r["agree"] == (r["good_score"] is not None and r["bad_score"] is not None
                              and r["good_score"] > r["bad_score"])
    assert metrics["own_pairwise_accuracy"] == round(sum(r["agree"] for r in rows) / len(rows), 4)
