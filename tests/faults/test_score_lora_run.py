"""SCoRe with LoRA (score_rl.lora.enabled=true) end to end under profile=debug: Stage I trains a
fresh adapter on the base model, Stage II goes on training it, the KL reference is the
adapter-disabled base model, and each stage publishes a merged plain checkpoint that differs
from the base only in the LoRA target modules. A run SIGKILLed inside Stage II resumes from its
last adapter checkpoint and ends with the uninterrupted run's metrics and weights, bit for bit."""
import json
import subprocess

import torch
from safetensors.torch import load_file
from tests.integration.sigkill import comparable, resumed_from, sigkill_when_written
from tests.helpers import CLI

# As test_score_recipe.py, with 16 problems per step: the debug model then gets some turn-2
# rewards in Stage I too, so both stages' adapters really move (seed 0).
ARGS = ["recipe=score", "profile=debug", "tracking.quiet=true", "cache=false", "threads=1", "seed_sft.steps=250",
        "task.seed_weights=[0.8,0.2]", "task.train_weights=[0.8,0.2]", "task.test_weights=[0.8,0.2]",
        "score_rl.problems_per_step=16", "score_rl.k=4", "score_rl.lora.enabled=true"]
KILL_AT = "iter_02/.score_rl.partial/checkpoints/step-000004/state.json"  # Stage II, after 4 of 8 steps
TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")  # LoraConfig's default target modules


def command(root, name):
    return [*CLI, "run", *ARGS, f"output_root={root}", f"run_name={name}"]


def changed(a: dict, b: dict) -> set:
    assert set(a) == set(b)  # merged: the same plain checkpoint layout, no adapter keys
    return {k for k in a if not torch.equal(a[k], b[k])}


def test_score_with_lora_merges_only_targets_and_resumes_inside_stage2(tmp_path):
    subprocess.run(command(tmp_path, "ref"), check=True, capture_output=True, timeout=600)
    ref = tmp_path / "ref"
    base = load_file(ref / "iter_00/seed_sft/model/model.safetensors")
    stage1, stage2 = (load_file(ref / f"iter_0{i}/score_rl/model/model.safetensors") for i in (1, 2))
    for merged in (stage1, stage2):
        diff = changed(base, merged)
        assert diff and all(any(t in k for t in TARGETS) for k in diff), diff
    assert changed(stage1, stage2), "Stage II did not change the weights"
    for i in (1, 2):
        manifest = json.loads((ref / f"iter_0{i}/score_rl/manifest.json").read_text())
        assert manifest["artifacts"] == {"policy": "model", "policy_adapter": "adapter"}
        assert manifest["metrics"]["episodes"] == 8 * 16 * 4

    # Stage II's adapter sits on the base model (the KL reference), not on Stage I's policy:
    # base + that adapter, merged, is Stage II's published model.
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    on_base = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(ref / "iter_00/seed_sft/model"),
                                        ref / "iter_02/score_rl/adapter").merge_and_unload().state_dict()
    assert all(torch.allclose(on_base[k], stage2[k], atol=1e-6) for k in stage2)

    run = tmp_path / "killed"
    sigkill_when_written(command(tmp_path, "killed"), run / KILL_AT)
    assert not (run / "iter_02/score_rl/manifest.json").exists()
    # a LoRA checkpoint holds the adapter, not a copy of the model
    assert (run / KILL_AT).parent.joinpath("model/adapter_model.safetensors").exists()

    subprocess.run(command(tmp_path, "killed"), check=True, capture_output=True, timeout=600)
    assert resumed_from(run, "iter_02/score_rl") == {"resumed_from_step": 4}
    assert comparable(run) == comparable(ref)
    for name in ("iter_02/score_rl/model/model.safetensors", "iter_02/score_rl/adapter/adapter_model.safetensors"):
        assert (run / name).read_bytes() == (ref / name).read_bytes()
