"""The SCoRe trainer's LoRA policy and reference (selfimprove/score_lora.py) on a real tiny model and real
adapter files: which weights are trained, what the KL reference is, and the bad-target error."""
import pytest
import torch
from omegaconf import OmegaConf

from selfimprove.config import ArithmeticCorrectionTaskConfig, HFBackendConfig, ModelConfig
from selfimprove.stages.score_rl import ScoreRLConfig
from selfimprove.training.options import LoraConfig
from selfimprove.rundir import write_jsonl
from selfimprove.stages import StageError
from selfimprove.score_lora import build_policy
from selfimprove.stages.score_rl import score_rl
from selfimprove.tracking import Console
from tests.helpers import TINY, stage_context

IDS = torch.tensor([[1, 30, 40, 50, 60, 70]])


class Log(Console):
    def __init__(self):
        super().__init__(quiet=True)
        self.lines = []

    def log(self, msg, *a, **kw):
        self.lines.append(str(msg))


def context(tmp_path, inputs, **lora):
    from selfimprove.tasks import build_task

    task = build_task(OmegaConf.structured(ArithmeticCorrectionTaskConfig(seed_examples=10, train_size=20, val_size=2,
                                                                          test_size=2)))
    write_jsonl(tmp_path / "train.jsonl", task.splits()["train"])
    cfg = OmegaConf.structured(ScoreRLConfig(steps=2, problems_per_step=2, k=2, max_new_tokens=8,
                                             lora=LoraConfig(enabled=True, **lora)))
    (tmp_path / "out").mkdir(exist_ok=True)
    return stage_context("score_rl", cfg, tmp_path / "out", iteration=2, task=task,
                         model_cfg=OmegaConf.structured(ModelConfig()), backend_cfg=OmegaConf.structured(HFBackendConfig()),
                         ui=Log(), inputs={"problems": str(tmp_path / "train.jsonl"), **inputs})


def logits(model):
    with torch.no_grad():
        return model(input_ids=IDS).logits


@pytest.fixture
def stage1(tmp_path):
    """The base model, and what a LoRA Stage I publishes: a (non-zero) adapter on it and the merged model."""
    from peft import LoraConfig as PeftLora, get_peft_model

    from selfimprove.models.tiny import build_tokenizer, save_tiny
    from transformers import AutoModelForCausalLM

    base = save_tiny(TINY, tmp_path / "base", seed=0)
    peft = get_peft_model(AutoModelForCausalLM.from_pretrained(base), PeftLora(r=4, target_modules=["q_proj", "v_proj"]))
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in peft.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)  # a trained adapter: it changes the model
    peft.save_pretrained(tmp_path / "stage1/adapter")
    peft.merge_and_unload().save_pretrained(tmp_path / "stage1/model")
    build_tokenizer().save_pretrained(tmp_path / "stage1/model")
    return base, tmp_path / "stage1"


def test_stage2_goes_on_training_stage1s_adapter_on_the_base_model(tmp_path, stage1):
    from transformers import AutoModelForCausalLM

    base, published = stage1
    ctx = context(tmp_path, {"init": str(published / "model"), "ref": str(base), "adapter": str(published / "adapter")})
    policy = build_policy(ctx, None)
    assert policy.mode == "continue" and policy.ref is None  # one copy of the base weights
    # the policy starts as Stage I's published model, the reference is the base model
    assert torch.allclose(logits(policy.model), logits(AutoModelForCausalLM.from_pretrained(published / "model")), atol=1e-5)
    with policy.reference() as ref:
        assert torch.allclose(logits(ref), logits(AutoModelForCausalLM.from_pretrained(base)), atol=1e-6)
    trained = {n for n, p in policy.model.named_parameters() if p.requires_grad}
    assert trained and all("lora_" in n for n in trained) and len(policy.trainable()) == len(trained)
    assert sum(p.numel() for p in policy.trainable()) < sum(p.numel() for p in policy.model.parameters()) / 10


def test_a_policy_that_is_not_base_plus_adapter_gets_a_separate_reference(tmp_path, stage1):
    base, published = stage1
    ctx = context(tmp_path, {"init": str(published / "model"), "ref": str(base), "adapter": None})
    policy = build_policy(ctx, None)
    assert policy.mode == "separate" and policy.ref is not None and not any(p.requires_grad for p in policy.ref.parameters())
    assert any("second, frozen copy" in line for line in ctx.ui.lines)
    # a fresh adapter (B = 0): the policy starts exactly at init
    from transformers import AutoModelForCausalLM

    assert torch.equal(logits(policy.model), logits(AutoModelForCausalLM.from_pretrained(published / "model")))


def test_the_stage_trains_only_the_adapter_against_the_base_and_publishes_it_merged(tmp_path, stage1):
    """Stage I from Stage I's own output: the policy differs from the base, so the KL term (the
    only turn-1 reward in Stage I) gives the random tiny model a learning signal."""
    from safetensors.torch import load_file

    base, published = stage1
    ctx = context(tmp_path, {"init": str(published / "model"), "ref": str(base), "adapter": str(published / "adapter")})
    ctx.iteration, ctx.cfg.beta2, ctx.cfg.learning_rate = 1, 1.0, 0.05
    result = score_rl(ctx)
    assert result.artifacts == {"policy": "model", "policy_adapter": "adapter"}
    assert (ctx.out / "adapter/adapter_config.json").exists() and not (ctx.out / "checkpoints").exists()
    before, start = load_file(base / "model.safetensors"), load_file(published / "model/model.safetensors")
    after = load_file(ctx.out / "model/model.safetensors")
    assert set(after) == set(before)  # a plain merged checkpoint
    assert any(not torch.equal(start[k], after[k]) for k in after), "the adapter did not train"
    diff = {k for k in before if not torch.equal(before[k], after[k])}
    assert diff and all("q_proj" in k or "v_proj" in k for k in diff)


def test_lora_with_a_module_the_model_lacks_is_refused_naming_the_real_ones(tmp_path, stage1):
    base, _ = stage1
    ctx = context(tmp_path, {"init": str(base), "ref": str(base)}, target_modules=["query_key_value"])
    with pytest.raises(StageError, match=r"\['query_key_value'\] do not exist.*q_proj.*score_rl\.lora\.target_modules"):
        score_rl(ctx)
    assert not (ctx.out / "model").exists()


def test_score_rl_lora_config_composes():
    from selfimprove.config.compose import compose

    [cfg] = compose(["recipe=score", "score_rl.lora.enabled=true", "score_rl.lora.r=8"])
    assert cfg.score_rl.lora.enabled and cfg.score_rl.lora.r == 8 and cfg.score_rl.lora.target_modules[0] == "q_proj"
