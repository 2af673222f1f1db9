import pytest
from omegaconf import OmegaConf

from selfimprove.config import CONF_DIR, ConfigError, available_recipes
from selfimprove.config.compose import compose
from selfimprove.stages import stage_kinds


def _leaves(node, prefix=""):
    for key, value in node.items():
        if isinstance(value, dict):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


@pytest.mark.parametrize("recipe", sorted(available_recipes()))
@pytest.mark.parametrize("profile", ["default", "debug"])
def test_every_recipe_composes_to_what_its_file_and_the_profile_say(recipe, profile):
    (cfg,) = compose([f"recipe={recipe}", f"profile={profile}"])
    file = OmegaConf.to_container(OmegaConf.load(available_recipes()[recipe]))
    file.pop("defaults", None)
    shrunk = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "profile" / f"{profile}.yaml")) or {}
    assert list(cfg.setup) == file["setup"] and list(cfg.stages) == file["stages"]
    kinds = stage_kinds()
    for name in [*file["setup"], *file["stages"]]:  # every listed stage is a typed section of a real kind
        assert cfg[name].kind in kinds and "enabled" in cfg[name], name
    for key, value in _leaves({k: v for k, v in file.items() if k not in ("setup", "stages")}):
        if isinstance(value, str) and "${" in value:
            continue
        top, _, rest = key.partition(".")
        if OmegaConf.select(OmegaConf.create(shrunk), key, default="<unset>") != "<unset>":
            value = OmegaConf.select(OmegaConf.create(shrunk), key)  # the profile's budget wins
        got = OmegaConf.select(cfg, key)
        assert got == (type(got)(value) if isinstance(got, float) and value is not None else value), key


def test_recipes_share_the_seed_model_and_say_why_they_differ():
    shared = OmegaConf.load(CONF_DIR / "seed_model" / "scratch.yaml").seed_sft
    differing = []
    for name, path in available_recipes().items():
        text = path.read_text()
        assert "- /seed_model: scratch" in text, name
        (cfg,) = compose([f"recipe={name}"])
        own = OmegaConf.load(path).get("seed_sft")
        for key in ("kind", "init", "data", "steps"):
            want = own[key] if own is not None and key in own else shared[key]
            assert cfg.seed_sft[key] == want, (name, key)
        if own is not None:  # a deliberate difference names the shared file and why
            line = next(ln for ln in text.splitlines() if ln.startswith("seed_sft:"))
            assert "differs from conf/seed_model/scratch.yaml on purpose" in line, name
            differing.append(name)
    assert sorted(differing) == ["easy_to_hard", "score"]


def test_overrides_apply():
    (cfg,) = compose(["recipe=star", "iterations=5", "seed=1", "generate.temperature=0.7"])
    assert (cfg.iterations, cfg.seed, cfg.generate.temperature) == (5, 1, 0.7)


def test_sweep_values_are_each_validated():
    assert len(compose(["seed=0,1,2"])) == 3
    with pytest.raises(ConfigError, match="iterations"):
        compose(["iterations=1,x"])


@pytest.mark.parametrize("override,expected", [
    (["recipe=nope"], "Unknown recipe 'nope'. Available recipes: .*star"),
    (["generate.temprature=0.7"], "Unknown config key 'generate.temprature'.*Did you mean 'generate.temperature'"),
    (["betta=0.1"], "Unknown config key 'betta'. Valid keys in the top level: .*iterations"),
    (["task.train_sise=10"], "Valid keys in task: .*train_size"),
    (["iterations=three"], "'iterations' must be of type Integer, got 'three'"),
    (["generate.temperature=-1"], "generate.temperature must be >= 0"),
    (["evaluate.pass_k=[1,16]", "evaluate.num_samples=4"], "raise evaluate.num_samples to at least 16"),
    (["filter.max_per_problem=0"], "max_per_problem must be >= 1"),
    (["train.max_epochs=0"], "max_epochs must be > 0 or null"),
    (["stages=[generate,nonexistent]"], "stage 'nonexistent'"),
    (["train.distributed=zero"], "train.distributed must be one of ddp, deepspeed_zero2, deepspeed_zero3, fsdp"),
    (["train.num_processes=2", "train.distributed=fsdp"], "needs GPUs and none is visible; use train.distributed=ddp"),
    (["stages=[dpo]", "dpo.beta=0"], "dpo.beta must be > 0 .*0.1"),
    (["stages=[dpo]", "dpo.init=scratch"], "dpo.init must be base or policy"),
    (["recipe=rest_em", "train.num_processes=2", "train.distributed=fsdp"],
     "train.select_by_val with train.num_processes > 1 needs train.distributed=ddp"),
    (["judge.score_regex=((("], r"(?s)Hydra cannot parse the override 'judge.score_regex=\(\(\('.*'judge.score_regex=\"\(\(\(\"'"),
    (["device=cuda"], "device=cuda but this machine has no usable CUDA GPU.*device=auto"),
    (["train.num_processes=3", "train.batch_size=8"], "train.batch_size=8 is the global batch and must divide evenly "
     "over train.num_processes=3.*use train.batch_size=6 or 9"),
    (["recipe=score", "backend=vllm"], "'score_rl' samples its episodes from the policy it updates.*backend=hf"),
    (["device=gpu0"], "device must be auto, cpu, cuda or cuda:N"),
])
def test_bad_input_gets_a_message_that_says_what_to_write(override, expected):
    with pytest.raises(ConfigError, match=expected):
        compose(override)


def test_user_recipe_folder_and_typo_inside_a_recipe(tmp_path, monkeypatch):
    lists = "setup: [prepare, seed_sft, evaluate]\nstages: [generate, score, filter, train, evaluate]\n"
    seed = "seed_sft: {kind: sft, init: scratch, data: seed_data}\n"
    (tmp_path / "mine.yaml").write_text(f"# my recipe\n{lists}{seed}iterations: 2\ngenerate:\n  k: 3\ntrain:\n  kind: sft\n")
    (tmp_path / "typo.yaml").write_text(f"{lists}{seed}train:\n  kind: sft\n  betta: 0.3\n")
    monkeypatch.setenv("SELFIMPROVE_RECIPE_PATH", str(tmp_path))
    (cfg,) = compose(["recipe=mine"])
    assert cfg.generate.k == 3 and cfg.iterations == 2
    with pytest.raises(ConfigError, match=r"Unknown config key 'train.betta' \(in recipe/typo\).*Valid keys in train"):
        compose(["recipe=typo"])


def test_select_by_val_with_data_parallel_ddp_composes():
    (cfg,) = compose(["recipe=rest_em", "train.num_processes=2"])
    assert cfg.train.select_by_val and cfg.train.num_processes == 2


def test_output_root_must_take_a_file_and_a_rename(tmp_path):
    from selfimprove.cli import check_output_root

    check_output_root(str(tmp_path / "new"))
    assert list((tmp_path / "new").iterdir()) == []  # the probe leaves nothing behind
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="output_root .* is not writable"):
        check_output_root(str(tmp_path / "file" / "runs"))


def test_judge_stages_need_a_task_that_can_be_judged(tmp_path):
    rows = "".join('{"question": "What is %d+1?", "answer": "#### %d"}\n' % (a, a + 1) for a in range(30))
    (tmp_path / "train.jsonl").write_text(rows)
    data = ["task=gsm8k", f"task.train_path={tmp_path / 'train.jsonl'}", f"task.test_path={tmp_path / 'train.jsonl'}"]
    with pytest.raises(ConfigError, match=r"\['judge_quality'\] judge the model's answers, and task=gsm8k offers no "
                                          r"judge seed data.*use task=arithmetic"):
        compose(["recipe=star", "stages=[generate,judge_quality]", *data])
    (cfg,) = compose(["recipe=star", "stages=[generate,judge_quality]"])  # the built-in task is a JudgingTask
    assert list(cfg.stages) == ["generate", "judge_quality"]


def test_a_run_is_composed_and_validated_once_before_it_runs(tmp_path, monkeypatch):
    """`selfimprove run` validates while composing (for its advice); the Hydra job that then runs
    the same config hands it to the pipeline without validating it again."""
    import json
    import sys

    import selfimprove.config.compose as composing
    from selfimprove.cli import main

    calls = []
    real = composing.validate
    monkeypatch.setattr(composing, "validate", lambda cfg: (calls.append(cfg.seed), real(cfg))[1])
    monkeypatch.setattr(sys, "argv", list(sys.argv))  # `run` hands its arguments to Hydra through argv
    main(["run", "recipe=star", "profile=debug", "iterations=0", "setup=[prepare]", "tracking.quiet=true",
          f"output_root={tmp_path}"])
    assert json.loads((tmp_path / "star" / "run.json").read_text())["status"] == "finished"
    assert calls == [0]
