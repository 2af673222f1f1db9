"""Stage sections are an open map typed by `kind`: a recipe holds only the sections its stage lists
name, may declare a second instance of a kind under any name, and still gets every misspelled key
refused with the valid keys listed."""
import re
import subprocess
from pathlib import Path

import pytest

from selfimprove.config.compose import compose
from selfimprove.config import SHARED_KEYS, ConfigError
from selfimprove.stages import stage_kinds
from tests.helpers import CLI

LISTS = "setup: [prepare, seed_sft, evaluate]\nstages: [generate, score, filter, train, polish, evaluate]\n"
SEED = "seed_sft: {kind: sft, init: scratch, data: seed_data}\ntrain: {kind: sft, init: base}\n"


@pytest.fixture
def recipes(tmp_path, monkeypatch):
    monkeypatch.setenv("SELFIMPROVE_RECIPE_PATH", str(tmp_path))

    def write(name: str, text: str) -> str:
        (tmp_path / f"{name}.yaml").write_text(text)
        return name
    return write


def test_a_run_holds_only_the_sections_its_stage_lists_name():
    (cfg,) = compose(["recipe=star"])
    sections = set(cfg) - set(SHARED_KEYS)
    assert sections == {"prepare", "seed_sft", "evaluate", "generate", "score", "rationalize", "filter", "train"}
    (sr,) = compose(["recipe=self_rewarding"])
    assert {"judge", "judge_seed", "m1_sft", "dpo", "judge_quality"} <= set(sr)
    assert not {"score_rl", "verifier", "grpo", "rationalize"} & set(sr)


def test_cfg_job_prints_the_typed_config_of_the_run():
    out = subprocess.run([*CLI, "run", "recipe=star", "--cfg", "job"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    keys = re.findall(r"^(\w+):", out.stdout, re.M)
    assert "train" in keys and "seed_sft" in keys and not {"judge", "score_rl", "verifier", "m1_sft", "dpo"} & set(keys)
    assert "select_by_val: false" in out.stdout  # the kind's defaults are filled in
    assert len(out.stdout.splitlines()) < 250  # 411 when every recipe's sections were in every config


def test_a_recipe_declares_a_second_instance_of_a_kind(recipes):
    recipes("polished", LISTS + SEED + "polish:\n  kind: sft\n  init: policy\n  data: train_data\n  steps: 7\n")
    (cfg,) = compose(["recipe=polished", "polish.learning_rate=1e-4"])
    assert cfg.polish.kind == "sft" and cfg.polish.steps == 7 and cfg.polish.learning_rate == 1e-4
    assert cfg.polish.replicas == 1  # SFTConfig's default


@pytest.mark.parametrize("text,override,expected", [
    # a misspelled key in a new instance: the valid keys of its kind
    (LISTS + SEED + "polish: {kind: sft, stepz: 3}\n", [],
     r"Unknown config key 'polish.stepz' \(in recipe/r\). Valid keys in polish: kind, enabled, init, .*steps.*"
     r"Did you mean 'polish.steps'"),
    (LISTS + SEED + "polish: {kind: sft}\n", ["polish.lerning_rate=1"], r"Did you mean 'polish.learning_rate'"),
    # an instance without a kind, or with one that does not exist
    (LISTS + SEED + "polish: {steps: 3}\n", [], r"stage 'polish' in the stage lists has no kind.*sft"),
    (LISTS + SEED + "polish: {kind: sftt}\n", [], r"stage 'polish' has kind 'sftt', which is not a stage kind"),
    # a section no stage list names would be dropped: a misspelling is refused instead
    (LISTS + SEED + "polish: {kind: sft}\ntrian: {steps: 3}\n", [],
     r"section 'trian' that neither `setup` nor `stages` names \(did you mean 'train'\?\)"),
    # the stage lists themselves
    (SEED, [], r"must list its stages: `setup: \[...\]`"),
    # a stage kind's own check, on an instance under another name
    (LISTS + SEED + "polish: {kind: sft, init: nowhere}\n", [], r"polish.init must be base or policy or scratch"),
])
def test_bad_stage_sections_get_a_message_that_says_what_to_write(recipes, text, override, expected):
    recipes("r", text)
    with pytest.raises(ConfigError, match=expected):
        compose(["recipe=r", *override])


def test_overrides_reach_sections_the_recipe_file_leaves_to_defaults():
    (cfg,) = compose(["recipe=star", "evaluate.num_samples=8", "evaluate.pass_k=[1,8]", "train.max_epochs=2"])
    assert cfg.evaluate.num_samples == 8 and cfg.train.max_epochs == 2
    with pytest.raises(ConfigError, match=r"Unknown config key 'evaluate.num_sample'.*Did you mean 'evaluate.num_samples'"):
        compose(["recipe=star", "evaluate.num_sample=8"])


def test_stage_kinds_are_found_without_a_list():
    """Every `register_stage("kind", ...)` in the stages package is found by importing the package's
    modules: a new kind is one module, not also an entry in a hand-kept list."""
    source = Path(__file__).resolve().parents[2] / "selfimprove" / "stages"
    declared = {k for f in source.glob("*.py") for k in re.findall(r'@register_stage\("(\w+)"', f.read_text())}
    assert declared and set(stage_kinds()) == declared
    assert all(k.schema.__dataclass_fields__["kind"].default == name for name, k in stage_kinds().items())
