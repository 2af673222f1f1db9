"""Model presets win over recipes: every training section of every recipe gets a pretrained
preset's optimizer settings (recipes' values are sized for the tiny from-scratch model), and only
the command line overrides them."""
import pytest
from omegaconf import OmegaConf

from selfimprove.config.compose import compose
from selfimprove.config import CONF_DIR, available_recipes

PRETRAINED = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml") if p.stem != "tiny")
TRAIN_SECTIONS = ("seed_sft", "train", "m1_sft", "dpo", "verifier", "score_rl", "grpo")
KEYS = ("batch_size", "learning_rate", "adam_beta2", "max_length", "stage2_learning_rate", "lora.learning_rate")


def declared(preset: str):
    """What the preset file and the shared fine-tuning file it includes say, read without Hydra."""
    own = OmegaConf.load(CONF_DIR / "model" / f"{preset}.yaml")
    assert "/finetune: pretrained" in (CONF_DIR / "model" / f"{preset}.yaml").read_text()
    own.pop("defaults")
    return OmegaConf.merge(OmegaConf.load(CONF_DIR / "finetune" / "pretrained.yaml"), own)


def test_every_pretrained_preset_sets_the_optimizer_of_each_training_kind():
    for preset in PRETRAINED:
        by_kind = declared(preset).by_kind
        assert set(by_kind) == {"sft", "dpo", "score_rl", "grpo"}, preset
        assert all(by_kind[k].learning_rate < 1e-4 for k in by_kind), preset  # fine-tuning rates, not tiny's 3e-3
    assert {"smollm2-135m-instruct", "qwen2.5-0.5b-instruct", "llama3.1-8b-instruct"} <= set(PRETRAINED)


def compose_all(combos):
    """Hydra compositions in one initialisation (compose() re-initialises Hydra each call, ~1 s)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from selfimprove.config import register_configs
    from selfimprove.config.typed import later_keys, typed_config
    from omegaconf import open_dict

    register_configs()
    GlobalHydra.instance().clear()
    out = {}
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        for c in combos:
            raw = hydra_compose(config_name="config", overrides=list(c), return_hydra_config=True)
            choices = dict(raw.hydra.runtime.choices)
            with open_dict(raw):
                del raw["hydra"]
            out[c] = typed_config(raw, choices["recipe"], later_keys(choices, list(c)))
    GlobalHydra.instance().clear()
    return out


@pytest.mark.parametrize("profile", ["default", "debug"])
def test_every_training_section_of_every_recipe_gets_the_presets_settings(profile):
    # the profile's effect does not depend on the preset: debug is checked with one preset, every recipe
    presets = PRETRAINED if profile == "default" else ["smollm2-135m-instruct"]
    combos = [(f"recipe={r}", f"model={m}", f"profile={profile}") for r in sorted(available_recipes()) for m in presets]
    for combo, cfg in compose_all(combos).items():
        want = declared(combo[1].split("=")[1]).by_kind
        checked = 0
        for section in TRAIN_SECTIONS:
            if section not in cfg:
                continue
            for key in KEYS:
                expected = OmegaConf.select(want, f"{cfg[section].kind}.{key}", default="unset")
                if expected == "unset" or (profile == "debug" and key == "batch_size"):  # debug shrinks budgets only
                    continue
                assert OmegaConf.select(cfg, f"{section}.{key}") == expected, f"{combo}: {section}.{key}"
                checked += 1
        assert checked >= 4


def test_the_command_line_still_wins():
    (cfg,) = compose(["recipe=self_rewarding", "model=qwen2.5-0.5b-instruct", "m1_sft.learning_rate=3e-3",
                      "dpo.adam_beta2=0.99", "m1_sft.max_length=512"])
    assert (cfg.m1_sft.learning_rate, cfg.dpo.adam_beta2, cfg.m1_sft.max_length) == (3e-3, 0.99, 512)
    assert "train" not in cfg  # the preset sizes every training section; a run keeps only its own


def test_the_readme_example_no_longer_keeps_tiny_settings():
    """`recipe=self_rewarding model=qwen2.5-0.5b-instruct --cfg job` used to show m1_sft at lr 3e-3, beta2 0.99."""
    (cfg,) = compose(["recipe=self_rewarding", "model=qwen2.5-0.5b-instruct"])
    assert (cfg.m1_sft.learning_rate, cfg.m1_sft.adam_beta2, cfg.m1_sft.batch_size) == (1e-5, 0.999, 8)
    assert cfg.dpo.learning_rate == 5e-7 and cfg.m1_sft.max_length is None


def test_recipes_still_size_the_tiny_model():
    """The tiny preset sets only what it must, so recipe values it does not name stay."""
    (sr,) = compose(["recipe=self_rewarding"])
    assert (sr.m1_sft.learning_rate, sr.m1_sft.adam_beta2, sr.dpo.learning_rate, sr.m1_sft.max_length) == (3e-3, 0.99, 2e-5, 256)
    (score,) = compose(["recipe=score"])
    assert score.seed_sft.steps == 1200 and score.score_rl.learning_rate == 2e-4
    (star,) = compose(["recipe=star"])
    assert (star.seed_sft.steps, star.train.learning_rate, star.train.adam_beta2) == (1000, 3e-3, 0.99)
    (dbg,) = compose(["recipe=vstar", "profile=debug"])
    assert dbg.train.batch_size == 16 and dbg.verifier.learning_rate == 1e-3  # the tiny preset's verifier rate


USER_RECIPE = """
setup: [prepare, seed_sft, evaluate]
stages: [generate, score, filter, polish, prefer, evaluate]
seed_sft: {kind: sft, init: scratch, data: seed_data}
polish: {kind: sft, init: base, learning_rate: 3e-3, max_length: 192}
prefer: {kind: dpo, data: pairs, learning_rate: 1e-3}
"""


@pytest.fixture
def user_recipe(tmp_path, monkeypatch):
    (tmp_path / "polished.yaml").write_text(USER_RECIPE)
    monkeypatch.setenv("SELFIMPROVE_RECIPE_PATH", str(tmp_path))
    return "recipe=polished"


def test_a_user_section_gets_its_kinds_preset_whatever_its_name(user_recipe):
    (cfg,) = compose([user_recipe, "model=qwen2.5-0.5b-instruct"])
    assert (cfg.polish.learning_rate, cfg.polish.max_length, cfg.polish.batch_size) == (1e-5, None, 8)
    assert (cfg.prefer.learning_rate, cfg.prefer.adam_beta2) == (5e-7, 0.999)
    (big,) = compose([user_recipe, "model=llama3.1-8b-instruct"])
    assert (big.polish.learning_rate, big.polish.batch_size) == (5e-6, 4)  # the preset's own size beats the shared file


def test_profile_and_command_line_win_over_the_kind_preset(user_recipe):
    (cfg,) = compose([user_recipe, "model=qwen2.5-0.5b-instruct", "profile=debug", "polish.learning_rate=2e-4",
                      "polish.lora.learning_rate=3e-4", "prefer.weight_decay=0.1"])
    assert (cfg.polish.learning_rate, cfg.polish.lora.learning_rate) == (2e-4, 3e-4)
    assert cfg.prefer.learning_rate == 5e-7 and cfg.prefer.weight_decay == 0.1
    assert cfg.seed_sft.batch_size == 16  # the debug profile's budget, over the preset's 8


def test_the_tiny_model_keeps_the_user_recipes_values(user_recipe):
    (cfg,) = compose([user_recipe])
    assert (cfg.polish.learning_rate, cfg.polish.max_length, cfg.prefer.learning_rate) == (3e-3, 192, 1e-3)
