"""The DPO stage on a real tiny model with TRL's DPOTrainer: it moves the policy toward the chosen
responses relative to the frozen initial weights, resumes from checkpoints, and publishes the
model under the configured artifact name."""
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf

from selfimprove.stages.dpo import DPOConfig
from selfimprove.models import load_model, load_tokenizer
from selfimprove.rundir import write_jsonl
from selfimprove.stages import StageError, get_stage
from selfimprove.tasks.arithmetic import Arithmetic, solution
from selfimprove.tracking import Console
from tests.helpers import TINY, stage_context



def context(tmp_path, rows=None, **dpo):
    from selfimprove.models.tiny import save_tiny

    base = save_tiny(TINY, tmp_path / "base", seed=0)
    if rows is None:
        rows = [{"prompt": f"Q: {a}+{a}\nA:", "chosen": solution(a, a), "rejected": solution(a, a + 1)}
                for a in range(10, 22)]
    write_jsonl(tmp_path / "pairs.jsonl", rows)
    cfg = OmegaConf.structured(DPOConfig(**{"steps": 6, "batch_size": 4, "learning_rate": 1e-2, "save_steps": 3,
                                            **dpo}))
    ctx = stage_context("dpo", cfg, tmp_path / "out", task=Arithmetic(SimpleNamespace()),
                        inputs={"data": str(tmp_path / "pairs.jsonl"), "init": str(base)})
    ctx.out.mkdir()
    return ctx, base


def margin(model_dir, tokenizer, rows) -> float:
    """Mean log p(chosen) - log p(rejected) under a model: what DPO raises relative to the reference."""
    model = load_model(str(model_dir), "float32", "cpu")
    total = 0.0
    for r in rows:
        for sign, text in ((1, r["chosen"]), (-1, r["rejected"])):
            p = tokenizer(r["prompt"])["input_ids"]
            ids = torch.tensor([p + tokenizer(text, add_special_tokens=False)["input_ids"]])
            with torch.no_grad():
                logp = model(ids).logits[0, :-1].log_softmax(-1).gather(1, ids[0, 1:, None])[:, 0]
            total += sign * logp[len(p) - 1:].sum().item()
    return total / len(rows)


def test_dpo_raises_the_chosen_over_rejected_margin(tmp_path):
    ctx, base = context(tmp_path, output="verifier")
    result = get_stage("dpo").fn(ctx)
    assert result.artifacts == {"verifier": "model"}
    m = result.metrics
    assert m["pairs"] == 12 and m["steps"] == 6 and "reward_accuracies" in m and "reward_margins" in m
    rows = [{"prompt": f"Q: {a}+{a}\nA:", "chosen": solution(a, a), "rejected": solution(a, a + 1)}
            for a in range(10, 22)]
    tok = load_tokenizer(str(base))
    assert margin(ctx.out / "model", tok, rows) > margin(base, tok, rows) + 1.0
    assert not (ctx.out / "checkpoints").exists()


class Killed(Exception):
    pass


class KillingConsole(Console):
    """Stops training from inside the step callback after `at` steps, as a SIGKILL would."""

    def __init__(self, at):
        super().__init__(quiet=True)
        self.at = at

    def progress(self, description, total, completed=0):
        import contextlib

        done = [completed]

        def advance(n):
            done[0] += n
            if done[0] == self.at:
                raise Killed

        return contextlib.nullcontext(advance)


def test_dpo_resumes_from_its_last_checkpoint_to_the_same_weights(tmp_path):
    from safetensors.torch import load_file

    ref, _ = context(tmp_path / "ref")
    get_stage("dpo").fn(ref)
    ctx, _ = context(tmp_path / "cut")
    ctx.ui = KillingConsole(at=5)  # checkpoint-3 exists, steps 4-5 are lost
    with pytest.raises(Killed):
        get_stage("dpo").fn(ctx)
    assert [d.name for d in (ctx.out / "checkpoints").glob("checkpoint-*")] == ["checkpoint-3"]
    ctx.ui = Console(quiet=True)
    result = get_stage("dpo").fn(ctx)
    assert result.metrics["resumed_from_step"] == 3
    a, b = load_file(ref.out / "model" / "model.safetensors"), load_file(ctx.out / "model" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_dpo_without_pairs_stops_with_advice(tmp_path):
    ctx, _ = context(tmp_path, rows=[])
    with pytest.raises(StageError, match="No preference pair"):
        get_stage("dpo").fn(ctx)


def test_dpo_trains_in_two_processes(tmp_path):
    """accelerate launch with 2 CPU processes (DDP over gloo): each worker finds the dpo stage by
    its kind (a worker module that registered `sft` itself once failed here with 'registered twice')."""
    ctx, _ = context(tmp_path, num_processes=2)
    m = get_stage("dpo").fn(ctx).metrics
    assert m["processes"] == 2 and m["steps"] == 6 and m["tokens_trained"] > 0
    assert (ctx.out / "model" / "model.safetensors").exists() and not (ctx.out / "checkpoints").exists()
