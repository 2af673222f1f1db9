"""The SFT stage on a real tiny model with real TRL training: LoRA and checkpoint selection."""
import json
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file

from selfimprove.stages.sft import SFTConfig
from selfimprove.training.options import LoraConfig
from selfimprove.rundir import write_jsonl
from selfimprove.stages import StageError, get_stage
from selfimprove.tasks.arithmetic import Arithmetic, solution
from tests.helpers import TINY, stage_context



def context(tmp_path, **sft):
    from selfimprove.models.tiny import save_tiny

    base = save_tiny(TINY, tmp_path / "base", seed=0)
    rows = [{"prompt": f"Q: {a}+{a}\nA:", "completion": solution(a, a)} for a in range(12)]
    write_jsonl(tmp_path / "data.jsonl", rows)
    write_jsonl(tmp_path / "val.jsonl", [{"id": "v0", "question": "1+1", "answer": "2"}])
    lora = LoraConfig(**sft.pop("lora", {}))
    cfg = OmegaConf.structured(SFTConfig(**{"steps": 4, "batch_size": 4, "learning_rate": 1e-2, "save_steps": 2,
                                            "lora": lora, **sft}))
    inputs = {"data": str(tmp_path / "data.jsonl"), "init": str(base), "val": str(tmp_path / "val.jsonl")}
    return stage_context("train", cfg, tmp_path / "out", task=Arithmetic(SimpleNamespace()), inputs=inputs), base


def test_lora_trains_only_the_targets_and_saves_merged_weights(tmp_path):
    ctx, base = context(tmp_path, lora={"enabled": True, "r": 4, "alpha": 8, "dropout": 0.0,
                                        "target_modules": ["q_proj", "v_proj"]})
    ctx.out.mkdir()
    result = get_stage("sft").fn(ctx)
    before = load_file(base / "model.safetensors")
    after = load_file(ctx.out / "model" / "model.safetensors")
    assert set(after) == set(before)  # merged: a plain checkpoint, no adapter keys
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(("q_proj" in k or "v_proj" in k) for k in changed)
    assert result.metrics["steps"] == 4


def test_lora_with_a_module_the_model_lacks_is_refused(tmp_path):
    ctx, _ = context(tmp_path, lora={"enabled": True, "target_modules": ["query_key_value"]})
    ctx.out.mkdir()
    with pytest.raises(StageError, match=r"\['query_key_value'\] do not exist.*q_proj"):
        get_stage("sft").fn(ctx)


def test_checkpoint_selected_by_validation_reward(tmp_path):
    ctx, _ = context(tmp_path, select_by_val=True, val_max_new_tokens=16)
    ctx.out.mkdir()
    metrics = get_stage("sft").fn(ctx).metrics
    history = (ctx.out / "val_history.json").read_text()
    history = {int(k): v for k, v in json.loads(history).items()}
    assert sorted(history) == [2, 4]
    assert metrics["selected_step"] == max(history, key=lambda s: (history[s], -s))
    assert not (ctx.out / "best").exists()


def test_two_process_data_parallel_training_matches_one_process(tmp_path):
    """accelerate launch with 2 CPU processes (DDP over gloo) on the same global batch and schedule
    ends with the same weights as one process, up to float summation order (measured: 2e-5 at most,
    while training moved weights by up to 0.045)."""
    weights, losses, tokens = {}, {}, {}
    for n in (1, 2):
        ctx, base = context(tmp_path / f"p{n}", num_processes=n, steps=8)
        ctx.out.mkdir()
        metrics = get_stage("sft").fn(ctx).metrics
        assert metrics["processes"] == n
        weights[n], losses[n] = load_file(ctx.out / "model" / "model.safetensors"), metrics["train_loss"]
        tokens[n] = metrics["tokens_trained"]
    start = load_file(base / "model.safetensors")
    assert max((weights[1][k] - start[k]).abs().max().item() for k in start) > 1e-2  # training moved them
    assert max((weights[1][k] - weights[2][k]).abs().max().item() for k in start) < 1e-4
    assert losses[2] == pytest.approx(losses[1], abs=1e-3)
    assert tokens[2] == tokens[1] > 0  # the same global batches: the Trainer sums the processes' tokens


def test_lora_checkpoint_selected_by_validation_is_published_merged(tmp_path):
    """With LoRA the selector holds adapters: the chosen one is merged into the initial weights,
    and a plain checkpoint (no adapter files) is published, the last step's unless it was chosen."""
    lora = {"enabled": True, "r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}
    models = {}
    for select in (False, True):
        ctx, base = context(tmp_path / str(select), select_by_val=select, val_max_new_tokens=8, lora=dict(lora))
        ctx.out.mkdir()
        metrics = get_stage("sft").fn(ctx).metrics
        assert sorted(p.name for p in (ctx.out / "model").glob("adapter*")) == []
        models[select] = load_file(ctx.out / "model" / "model.safetensors")
    before = load_file(base / "model.safetensors")
    changed = {k for k in before if not torch.equal(before[k], models[True][k])}
    assert changed and all(("q_proj" in k or "v_proj" in k) for k in changed)
    same_as_last = all(torch.equal(models[True][k], models[False][k]) for k in before)
    assert same_as_last == (metrics["selected_step"] == 4)


def test_selector_validates_a_lora_checkpoint_found_on_resume(tmp_path):
    """A stage killed between writing a LoRA trainer checkpoint (adapter only) and validating it:
    on resume the selector loads that adapter on the initial weights and measures it."""
    from peft import LoraConfig as PeftLora, get_peft_model
    from transformers import AutoModelForCausalLM

    from selfimprove.models import load_tokenizer
    from selfimprove.training.selection import ValSelector

    ctx, base = context(tmp_path, select_by_val=True, val_max_new_tokens=8)
    ctx.out.mkdir()
    peft = get_peft_model(AutoModelForCausalLM.from_pretrained(base), PeftLora(r=4, target_modules=["q_proj"]))
    with torch.no_grad():
        for name, p in peft.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    peft.save_pretrained(tmp_path / "checkpoint-2")
    selector = ValSelector(ctx, load_tokenizer(base), str(base))
    loaded = selector.load(tmp_path / "checkpoint-2")
    ids = torch.tensor([[1, 30, 40, 50]])
    with torch.no_grad():
        assert torch.allclose(loaded(input_ids=ids).logits, peft(input_ids=ids).logits, atol=1e-6)
    selector.check(lambda: selector.load(tmp_path / "checkpoint-2"), 2)
    assert list(json.loads((ctx.out / "val_history.json").read_text())) == ["2"]
    assert (ctx.out / "best" / "adapter_config.json").exists()


def test_two_process_training_selects_by_validation_on_the_first_process(tmp_path):
    """select_by_val under DDP (2 CPU processes, gloo): rank 0 validates every checkpoint while the
    other waits, and the chosen weights are published once; the published model scores the
    validation reward the stage reports."""
    from selfimprove.backends import SamplingParams
    from selfimprove.backends.hf import batched_generate
    from selfimprove.config import ArithmeticTaskConfig
    from selfimprove.models import load_model, load_tokenizer
    from selfimprove.rundir import read_jsonl
    from selfimprove.tasks import build_task

    ctx, _ = context(tmp_path, select_by_val=True, val_max_new_tokens=16, num_processes=2, steps=6)
    ctx.task = build_task(OmegaConf.structured(ArithmeticTaskConfig()))  # the workers rebuild it from its config
    write_jsonl(tmp_path / "val.jsonl", [{"id": f"v{a}", "question": f"{a}+{a}", "answer": str(2 * a)} for a in range(6)])
    ctx.out.mkdir()
    metrics = get_stage("sft").fn(ctx).metrics
    history = json.loads((ctx.out / "val_history.json").read_text())
    assert metrics["processes"] == 2 and sorted(history, key=int) == ["2", "4", "6"]
    # compute: the Trainer sums both processes' tokens; rank 0's validation sampling comes back too
    assert metrics["tokens_trained"] > 0 and metrics["tokens_prompt"] > 0 and metrics["params"] > 0
    best = max(history, key=lambda s: (history[s], -int(s)))
    assert metrics["selected_step"] == int(best) and metrics["val_reward"] == round(history[best], 4)
    assert metrics["val_reward_last"] == round(history["6"], 4)
    assert not (ctx.out / "best").exists() and not (ctx.out / "checkpoints").exists()
    tok = load_tokenizer(ctx.out / "model", padding_side="left")
    problems = read_jsonl(tmp_path / "val.jsonl")
    outs = batched_generate(load_model(ctx.out / "model"), tok, [ctx.task.prompt(p) for p in problems],
                            SamplingParams(n=1, max_new_tokens=16), batch_size=256)
    reward = sum(ctx.task.reward(o[0], p) for o, p in zip(outs, problems)) / len(problems)
    assert round(reward, 4) == metrics["val_reward"]


def test_resume_skips_a_checkpoint_cut_off_while_being_written(tmp_path):
    from selfimprove.training.checkpoints import last_complete_checkpoint

    for step, state in ((5, '{"global_step": 5}'), (10, '{"global_st'), (15, None)):
        d = tmp_path / f"checkpoint-{step}"
        d.mkdir()
        if state is not None:
            (d / "trainer_state.json").write_text(state)
    assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-5")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-5"]  # the cut-off ones are removed
    assert last_complete_checkpoint(tmp_path / "none") is None


def test_non_finite_loss_stops_the_stage_with_step_and_value(tmp_path):
    from transformers import AutoModelForCausalLM

    ctx, base = context(tmp_path, steps=20)
    broken = AutoModelForCausalLM.from_pretrained(base)
    with torch.no_grad():
        broken.model.norm.weight.fill_(float("nan"))  # a corrupted starting point: every loss is NaN
    broken.save_pretrained(base)
    ctx.out.mkdir()
    with pytest.raises(StageError, match=r"loss became (nan|inf) at step \d+.*last good checkpoint"):
        get_stage("sft").fn(ctx)


def test_max_epochs_caps_the_steps_at_that_many_passes_over_the_rows():
    from omegaconf import OmegaConf

    from selfimprove.training.fit import planned_steps

    cfg = OmegaConf.create({"steps": 30, "step_growth": 1.0, "batch_size": 16, "max_epochs": 2})
    assert planned_steps(cfg, 1, examples=60) == 8  # ceil(2 * 60 / 16)
    assert planned_steps(cfg, 1, examples=1000) == 30  # the cap only lowers
    assert planned_steps(cfg, 1, examples=1) == 1
    cfg.max_epochs = None
    assert planned_steps(cfg, 1, examples=60) == 30


def test_rows_longer_than_max_length_stop_the_stage_with_the_count_and_the_value_to_set(tmp_path):
    """TRL would cut their answers (and, with a long prompt, drop every row: torch's "num_samples=0")."""
    ctx, _ = context(tmp_path, max_length=16)
    ctx.out.mkdir()
    with pytest.raises(StageError, match=r"(\d+) of 12 training rows of 'train' are longer than train.max_length=16 "
                                         r"tokens \(the longest has (\d+).*Set train.max_length=\2 .*train.max_length=null"):
        get_stage("sft").fn(ctx)
    assert not (ctx.out / "checkpoints").exists()  # stopped before training


def test_max_length_null_takes_the_longest_row(tmp_path):
    ctx, _ = context(tmp_path, max_length=None, steps=2)
    ctx.out.mkdir()
    metrics = get_stage("sft").fn(ctx).metrics
    rows = [json.loads(line) for line in (tmp_path / "data.jsonl").read_text().splitlines()]
    # one char = one token for the tiny tokenizer, + EOS (the tiny tokenizer adds no BOS)
    assert metrics["longest_row_tokens"] == max(len(r["prompt"]) + len(r["completion"]) for r in rows) + 1


def test_warmup_stable_decay_holds_the_peak_then_decays_linearly_to_the_floor():
    """lr_scheduler=warmup_stable_decay (easy-to-hard's schedule) through transformers' own
    scheduler, with the settings the train stages hand the Trainer."""
    from transformers import get_scheduler

    from selfimprove.training.fit import scheduler_kwargs

    cfg = OmegaConf.structured(SFTConfig(lr_scheduler="warmup_stable_decay", warmup_ratio=0.1, decay_ratio=0.3,
                                         min_lr_ratio=0.01))
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = get_scheduler("warmup_stable_decay", opt, num_warmup_steps=10, num_training_steps=100,
                          scheduler_specific_kwargs=scheduler_kwargs(cfg, 100))
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.01) and lrs[5] == pytest.approx(0.505)  # linear warmup over 10% of the steps
    assert all(lr == pytest.approx(1.0) for lr in lrs[10:71])  # stable until the last 30%
    assert lrs[85] == pytest.approx(0.01 + 0.99 * (1 - 15 / 30))  # linear decay towards 1% of the peak
    assert lrs[99] == pytest.approx(0.01 + 0.99 / 30)
    assert scheduler_kwargs(OmegaConf.structured(SFTConfig()), 100) == {}  # cosine: nothing extra


def test_warmup_stable_decay_settings_out_of_range_are_refused():
    from selfimprove.config.compose import compose
    from selfimprove.config import ConfigError

    with pytest.raises(ConfigError, match="decay_ratio"):
        compose(["recipe=easy_to_hard", "seed_sft.lr_scheduler=warmup_stable_decay", "seed_sft.decay_ratio=0"])
    with pytest.raises(ConfigError, match="warmup_ratio \\+ decay_ratio"):
        compose(["recipe=easy_to_hard", "seed_sft.lr_scheduler=warmup_stable_decay", "seed_sft.warmup_ratio=0.5",
                 "seed_sft.decay_ratio=0.6"])
