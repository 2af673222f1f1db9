"""The GRPO stage: TRL's GRPOTrainer on a real tiny model with the task's checker as reward, its
options checked against the installed TRL, its monitors and token counts, and resume."""
from types import SimpleNamespace

import pytest
import trl
from omegaconf import OmegaConf
from safetensors.torch import load_file

from selfimprove.config.compose import compose
from selfimprove.config import ConfigError
from selfimprove.stages.grpo import GRPOStageConfig
from selfimprove.training.options import LoraConfig
from selfimprove.rundir import write_jsonl
from selfimprove.stages import StageError, get_stage
from selfimprove.stages.grpo import _groups, check_options, grpo_args, task_reward
from selfimprove.tasks.arithmetic import Arithmetic
from tests.helpers import TINY, stage_context



# ----------------------------------------------------------------------------- config
@pytest.mark.parametrize("override,expected", [
    (["grpo.num_generations=1"], "num_generations must be >= 2 .*a group of one has no advantage"),
    (["grpo.batch_size=30"], "must be a multiple of grpo.num_generations.*batch_size=64"),
    (["grpo.temperature=0"], "grpo.temperature must be > 0"),
    (["grpo.loss_type=ppo"], f"not a loss variant of the installed TRL {trl.__version__}; choose one of .*dapo"),
    (["+grpo.trl_args.made_up_option=1"],
     f"grpo.trl_args.made_up_option needs GRPOConfig.made_up_option, which the installed TRL {trl.__version__}"),
    (["+grpo.trl_args.seed=3"], "sets \\['seed'\\], which the stage sets itself"),
    (["grpo.num_iterations=2", "grpo.save_steps=5"], "save_steps must be a multiple of grpo.num_iterations=2"),
    (["grpo.scale_rewards=std"], "scale_rewards must be group, batch or none"),
    (["grpo.init=scratch"], "grpo.init must be base or policy"),
])
def test_bad_grpo_settings_are_refused_with_advice(override, expected):
    with pytest.raises(ConfigError, match=expected):
        compose(["recipe=grpo", *override])


def test_recipe_defaults_follow_deepseekmath_and_share_the_seed_model_setup():
    (grpo,) = compose(["recipe=grpo"])
    (star,) = compose(["recipe=star"])
    g = grpo.grpo
    assert (g.beta, g.epsilon, g.loss_type, g.scale_rewards, g.num_iterations) == (0.04, 0.2, "grpo", "group", 1)
    assert list(grpo.setup) == list(star.setup) and grpo.seed_sft == star.seed_sft and grpo.prepare == star.prepare
    assert list(grpo.stages) == ["grpo", "evaluate"]


def test_an_option_of_the_installed_trl_passes_through():
    cfg = OmegaConf.structured(GRPOStageConfig(trl_args={"top_entropy_quantile": 0.2}))
    assert check_options(cfg) == []
    assert grpo_args(cfg)["top_entropy_quantile"] == ("trl_args.top_entropy_quantile", 0.2)


def test_vllm_settings_map_onto_trls_vllm_options():
    cfg = OmegaConf.structured(GRPOStageConfig())
    cfg.vllm.enabled, cfg.vllm.mode, cfg.vllm.gpu_memory_utilization = True, "server", 0.5
    cfg.vllm.server_base_url = "http://localhost:8000"
    args = {k: v for k, (_, v) in grpo_args(cfg).items()}
    assert args["use_vllm"] is True and args["vllm_mode"] == "server"
    assert args["vllm_gpu_memory_utilization"] == 0.5 and args["vllm_server_base_url"] == "http://localhost:8000"
    assert check_options(cfg) == []  # every one of them exists in the installed TRL
    assert "use_vllm" not in grpo_args(OmegaConf.structured(GRPOStageConfig()))  # off: transformers sampling


# ----------------------------------------------------------------------------- reward
class WordyArithmetic(Arithmetic):
    """A task whose checker returns a word instead of a number (a user's bug)."""

    def reward(self, text, problem):
        return "right"


def test_reward_is_the_tasks_checker_and_counts_groups_without_signal():
    import json

    task = Arithmetic(SimpleNamespace(name="arithmetic"))
    a, b = {"id": "a", "answer": "5"}, {"id": "b", "answer": "7"}
    problem = [json.dumps(a)] * 2 + [json.dumps(b)] * 2
    logged = {}
    fn = task_reward(task, num_generations=2)
    out = fn(prompts=["p"] * 4, completions=["#### 5", "#### 5", "#### 7", "#### 1"], problem=problem,
             log_metric=logged.__setitem__)
    assert out == [1.0, 1.0, 1.0, 0.0]
    assert logged == {"groups_all_right": 0.5, "groups_all_wrong": 0.0}
    # conversational completions: the assistant turn's text is checked
    assert fn(prompts=["p"], completions=[[{"role": "assistant", "content": "#### 5"}]], problem=[json.dumps(a)]) == [1.0]


def test_groups_are_runs_of_one_problem_cut_to_k():
    assert _groups(["a", "a", "b", "b", "b", "b"], [1, 0, 1, 1, 0, 0], 2) == [[1, 0], [1, 1], [0, 0]]
    assert _groups(["a", "b", "b"], [1, 0, 0], 2) == [[0, 0]]  # a's group is incomplete here


def test_a_reward_that_is_not_a_number_names_the_task():
    import json

    fn = task_reward(WordyArithmetic(SimpleNamespace(name="arithmetic")), num_generations=2)
    with pytest.raises(StageError, match=r"task 'arithmetic' \(WordyArithmetic.reward\) returned 'right' \(str\)"):
        fn(prompts=["p"], completions=["#### 5"], problem=[json.dumps({"id": "a", "answer": "5"})])


# ----------------------------------------------------------------------------- the stage
class SeesTheLastDigit(Arithmetic):
    """Partial credit an untrained model can earn (the answer's last digit anywhere in the text),
    so that the groups' rewards differ and GRPO has an advantage to follow."""

    def reward(self, text, problem):
        return float(str(problem["answer"])[-1] in text)


class FailingAt(SeesTheLastDigit):
    """The same checker, until its `calls`-th completion: then the run stops (as if killed)."""

    def __init__(self, cfg, calls):
        super().__init__(cfg)
        self.left = calls

    def reward(self, text, problem):
        self.left -= 1
        if self.left < 0:
            raise KeyboardInterrupt("killed")
        return super().reward(text, problem)


def context(tmp_path, task=None, **grpo):
    from selfimprove.models.tiny import save_tiny

    base = tmp_path.parent / "base"
    if not base.exists():
        save_tiny(TINY, base, seed=0)
    write_jsonl(tmp_path / "train.jsonl", [{"id": f"p{a}", "question": f"{a}+{a}", "answer": str(2 * a),
                                            "difficulty": 1} for a in range(10)])
    grpo["lora"] = LoraConfig(**grpo.get("lora", {}))
    cfg = OmegaConf.structured(GRPOStageConfig(**{"steps": 4, "batch_size": 8, "num_generations": 4,
                                                  "learning_rate": 1e-3, "save_steps": 2, "max_new_tokens": 16,
                                                  **grpo}))
    ctx = stage_context("grpo", cfg, tmp_path / "out", task=task or SeesTheLastDigit(SimpleNamespace(name="arithmetic")),
                        inputs={"data": str(tmp_path / "train.jsonl"), "init": str(base)})
    ctx.out.mkdir(parents=True)
    return ctx, base


def test_grpo_trains_reports_monitors_and_resumes_to_the_same_weights(tmp_path):
    ctx, base = context(tmp_path / "whole")
    m = get_stage("grpo").fn(ctx).metrics
    assert m["steps"] == 4 and m["samples"] == 4 * 8 and m["problems"] == 10
    for key in ("reward_mean", "groups_all_right", "groups_all_wrong", "groups_zero_std", "kl", "entropy",
                "completion_length"):
        assert key in m, key
    assert 0 <= m["groups_all_right"] + m["groups_all_wrong"] <= 1
    assert m["tokens_completion"] == pytest.approx(m["completion_length"] * m["samples"], abs=1)
    assert m["tokens_prompt"] > 0 and m["tokens_trained"] == m["tokens_prompt"] + m["tokens_completion"]
    assert m["tokens_reference"] == m["tokens_trained"]  # beta > 0: one reference forward per trained token
    weights = load_file(ctx.out / "model" / "model.safetensors")
    assert any((weights[k] != v).any() for k, v in load_file(base / "model.safetensors").items())

    # stopped during step 3 (after the checkpoint of step 2), then run again: it resumes from step 2
    ctx2, _ = context(tmp_path / "killed", task=FailingAt(SimpleNamespace(name="arithmetic"), calls=2 * 8))
    with pytest.raises(KeyboardInterrupt):
        get_stage("grpo").fn(ctx2)
    assert (ctx2.out / "checkpoints" / "checkpoint-2").exists()
    ctx2.task = SeesTheLastDigit(SimpleNamespace(name="arithmetic"))
    m2 = get_stage("grpo").fn(ctx2).metrics
    assert m2["resumed_from_step"] == 2
    resumed = load_file(ctx2.out / "model" / "model.safetensors")
    assert all((resumed[k] == v).all() for k, v in weights.items())
    same = {k: v for k, v in m.items() if k not in ("resumed_from_step", "steps_per_s")}
    assert {k: m2[k] for k in same} == same


def test_lora_grpo_publishes_merged_weights(tmp_path):
    ctx, base = context(tmp_path / "lora", steps=2, lora={"enabled": True, "r": 4, "alpha": 8, "dropout": 0.0,
                                                            "target_modules": ["q_proj", "v_proj"]})
    get_stage("grpo").fn(ctx)
    before, after = load_file(base / "model.safetensors"), load_file(ctx.out / "model" / "model.safetensors")
    assert set(after) == set(before)  # merged: a plain checkpoint
    changed = {k for k in before if (before[k] != after[k]).any()}
    assert changed and all("q_proj" in k or "v_proj" in k for k in changed)
