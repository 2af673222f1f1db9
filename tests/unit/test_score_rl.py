"""SCoRe's pieces on hand-made numbers: shaped rewards with the per-turn KL, RLOO advantages, the
loss, the Δ metrics, the two-turn task, and the config checks."""
import random

import pytest
import torch

from selfimprove.stages.evaluate_turns import turn_metrics
from selfimprove.stages.score_rl import policy_loss, rloo_advantages, segment_logprobs, turn_rewards
from selfimprove.tasks.arithmetic import solution
from selfimprove.tasks.arithmetic_correction import attempt, blind_spot, random_slip

ALPHA, BETA1, BETA2 = 10.0, 0.01, 0.1


@pytest.mark.parametrize("r1,r2,shaped", [(0, 1, 11), (1, 1, 1), (1, 0, -10), (0, 0, 0)])
def test_stage2_shaped_turn2_reward_is_the_papers_table(r1, r2, shaped):
    R1, R2 = turn_rewards(r1, r2, 0.0, 0.0, stage=2, alpha=ALPHA, beta1=BETA1, beta2=BETA2)
    assert R2 == shaped and R1 == r1


def test_per_turn_kl_penalty_stage1_and_stage2():
    r1, r2 = torch.tensor([1.0, 0.0]), torch.tensor([1.0, 1.0])
    kl1, kl2 = torch.tensor([2.0, 5.0]), torch.tensor([3.0, 0.5])
    # Stage I: no reward on turn 1, only the strong KL beta2; turn 2: reward minus the weak KL beta1
    R1, R2 = turn_rewards(r1, r2, kl1, kl2, stage=1, alpha=ALPHA, beta1=BETA1, beta2=BETA2)
    assert torch.allclose(R1, torch.tensor([-0.2, -0.5]))
    assert torch.allclose(R2, torch.tensor([1 - 0.03, 1 - 0.005]))
    # Stage II: both turns rewarded, beta1 on both, turn 2 shaped: 1 + 10 * (1 - r1)
    R1, R2 = turn_rewards(r1, r2, kl1, kl2, stage=2, alpha=ALPHA, beta1=BETA1, beta2=BETA2)
    assert torch.allclose(R1, torch.tensor([1 - 0.02, 0 - 0.05]))
    assert torch.allclose(R2, torch.tensor([1 - 0.03, 11 - 0.005]))


def test_rloo_baseline_is_the_mean_of_the_other_samples():
    rewards = torch.tensor([[1.0, 0.0, 0.0, 1.0], [11.0, 1.0, -10.0, 0.0]])
    adv = rloo_advantages(rewards)
    assert torch.allclose(adv[0], torch.tensor([1 - 1 / 3, 0 - 2 / 3, 0 - 2 / 3, 1 - 1 / 3]))
    assert torch.allclose(adv[1], torch.tensor([11 - (-9) / 3, 1 - 1 / 3, -10 - 12 / 3, 0 - 2 / 3]))
    # identical rewards carry no signal
    assert torch.equal(rloo_advantages(torch.full((2, 3), 7.0)), torch.zeros(2, 3))


def test_loss_weights_each_turns_logprob_by_its_own_advantage():
    logp1 = torch.tensor([-2.0, -4.0], requires_grad=True)
    logp2 = torch.tensor([-1.0, -3.0], requires_grad=True)
    loss = policy_loss(logp1, logp2, torch.tensor([0.5, -0.5]), torch.tensor([2.0, 0.0]))
    assert loss.item() == pytest.approx(-((0.5 * -2 + -0.5 * -4) + (2 * -1 + 0)) / 2)
    loss.backward()
    assert torch.allclose(logp1.grad, torch.tensor([-0.25, 0.25])) and torch.allclose(logp2.grad, torch.tensor([-1.0, 0.0]))


def test_delta_metrics_on_hand_made_outcomes():
    # problems: c->c, i->c, c->i, i->i, i->c
    first = [True, False, True, False, False]
    second = [True, True, False, False, True]
    m = turn_metrics(first, second)
    assert m == {"acc_t1": 0.4, "acc_t2": 0.6, "delta": 0.2, "delta_i2c": 0.4, "delta_c2i": 0.2}
    assert m["delta"] == pytest.approx(m["delta_i2c"] - m["delta_c2i"])
    with pytest.raises(ValueError):
        turn_metrics([True], [])


def test_segment_logprobs_score_each_turn_in_one_pass():
    from selfimprove.config import TinyModelConfig
    from selfimprove.models.tiny import build_model, build_tokenizer

    tok = build_tokenizer()
    model = build_model(TinyModelConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                        intermediate_size=64), tok, seed=0).eval()
    rows = [["Q: 1+2\nA:", " 1+2=3\n#### 3", "\nFix.\nA:", " 2+1=3\n#### 3"], ["Q: 12+30\nA:", " x", "\nFix.\nA:", ""]]
    got1, got3 = segment_logprobs(model, tok, rows, scored=(1, 3))
    for i, segments in enumerate(rows):  # one sequence at a time, no padding
        ids = torch.tensor([tok("".join(segments))["input_ids"]])
        logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1], -1)
        bounds = [len(tok("".join(segments[:j]))["input_ids"]) for j in range(5)]
        for got, seg in ((got1, 1), (got3, 3)):
            want = sum((logp[j - 1, ids[0, j]] for j in range(bounds[seg], bounds[seg + 1])), torch.tensor(0.0))
            assert got[i].item() == pytest.approx(want.item(), abs=1e-4)


def test_a_slip_is_wrong_and_visible_in_the_scratchpad():
    assert attempt(478, 356) == solution(478, 356)
    assert blind_spot(473, 356) is None and blind_spot(463, 357) == (0, 1)  # 3+7 = 10 in the ones column
    assert attempt(463, 357, blind_spot(463, 357)) == " 3+7=11,6+5+1=12,4+3+1=8\n#### 821"
    assert attempt(478, 356, (1, -1)) == " 8+6=14,7+5+1=12,4+3+1=8\n#### 824"
    rng = random.Random(0)
    for _ in range(200):
        a, b = rng.randint(0, 9999), rng.randint(0, 9999)
        slipped = attempt(a, b, random_slip(a, b, rng))
        assert slipped != solution(a, b) and not slipped.endswith(f"#### {a + b}")
        # exactly one column equation is false
        false = [s for s in slipped.split("\n")[0].split(",") if eval(s.split("=")[0]) != int(s.split("=")[1])]
        assert len(false) == 1


def test_correction_demonstrations_follow_the_configured_shares():
    from omegaconf import OmegaConf

    from selfimprove.config import ArithmeticCorrectionTaskConfig
    from selfimprove.tasks import build_task

    cfg = OmegaConf.structured(ArithmeticCorrectionTaskConfig(seed_examples=600, blind_spot_rate=0.0,
                                                              demo_first_error_rate=0.5, demo_fix_rate=1.0,
                                                              demo_break_rate=0.0))
    task = build_task(cfg)
    seed = task.splits()["seed"]
    rows = task.extra_seed_rows(seed)
    assert len(rows) == 600
    by_id = {p["id"]: p for p in seed}
    wrong_first = 0
    for r in rows:
        p = by_id[r["prompt_id"]]
        assert r["prompt"].startswith(task.prompt(p)) and r["prompt"].endswith("Check each step and fix any error.\nA:")
        assert task.reward(r["completion"], p) == 1.0  # fix rate 1, break rate 0: every second attempt is right
        first = r["prompt"][len(task.prompt(p)):].split("\nCheck")[0]
        wrong_first += task.reward(first, p) == 0.0
    assert 240 < wrong_first < 360


@pytest.mark.parametrize("override,message", [
    ("score_rl.alpha=-1", "score_rl.alpha must be >= 0"),
    ("score_rl.beta1=-0.01", "score_rl.beta1 and score_rl.beta2 must be >= 0"),
    ("score_rl.beta2=-0.1", "score_rl.beta1 and score_rl.beta2 must be >= 0"),
    ("task.correction_template='Try again.'", "task.correction_template must begin with the placeholder"),
    ("task.correction_template='Again: {attempt}'", "task.correction_template must begin with the placeholder"),
    ("score_rl.k=1", "score_rl.k must be >= 2"),
    ("score_rl.schedule=[1]", "score_rl.schedule lists the SCoRe stage"),
    ("task=gsm8k;task.correction_template=null", "Use task=arithmetic_correction, or give task=gsm8k one"),
])
def test_bad_score_config_is_rejected_with_advice(override, message):
    from selfimprove.config.compose import compose
    from selfimprove.config import ConfigError

    compose(["recipe=score"])  # the recipe itself is valid
    with pytest.raises(ConfigError, match=message):
        compose(["recipe=score", *override.split(";")])


def test_non_finite_loss_stops_the_stage_with_step_and_values(tmp_path):
    from omegaconf import OmegaConf

    from selfimprove.config import ArithmeticCorrectionTaskConfig, HFBackendConfig, ModelConfig, TinyModelConfig
    from selfimprove.stages.score_rl import ScoreRLConfig
    from selfimprove.models.tiny import build_tokenizer, save_tiny
    from selfimprove.rundir import write_jsonl
    from selfimprove.stages import StageContext, StageError
    from selfimprove.stages.score_rl import score_rl
    from selfimprove.tasks import build_task
    from selfimprove.tracking import Console
    from transformers import AutoModelForCausalLM

    base = save_tiny(TinyModelConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64),
                     tmp_path / "base", seed=0)
    broken = AutoModelForCausalLM.from_pretrained(base)
    with torch.no_grad():
        broken.lm_head.weight[5, 0] = float("nan")  # a corrupted reference model: NaN KL, NaN loss
    broken.save_pretrained(tmp_path / "broken")
    build_tokenizer().save_pretrained(tmp_path / "broken")
    task = build_task(OmegaConf.structured(ArithmeticCorrectionTaskConfig(seed_examples=10, train_size=20, val_size=2,
                                                                          test_size=2)))
    write_jsonl(tmp_path / "train.jsonl", task.splits()["train"])
    cfg = OmegaConf.structured(ScoreRLConfig(steps=3, problems_per_step=2, k=2, max_new_tokens=8))
    ctx = StageContext(name="score_rl", iteration=1, seed=0, cfg=cfg, task=task, model_cfg=OmegaConf.structured(ModelConfig()),
                       backend_cfg=OmegaConf.structured(HFBackendConfig()), device="cpu", out=tmp_path / "out", ui=Console(quiet=True),
                       inputs={"init": str(base), "ref": str(tmp_path / "broken"), "problems": str(tmp_path / "train.jsonl")})
    (tmp_path / "out").mkdir()
    with pytest.raises(StageError, match=r"loss is nan at step 1 .*mean KL turn 1 nan.*last good checkpoint \(step 0\)"):
        score_rl(ctx)
    assert not (tmp_path / "out/model").exists()


CHAT = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"


def test_chat_episodes_are_scored_as_the_sampler_rendered_them(tmp_path):
    """With a chat template the second turn is a conversation (question, first attempt as the
    assistant's turn, the instruction as a new user turn); the scorer's segments join up to exactly
    the text the sampler rendered, and each turn's log-probability is that of its tokens there."""
    from selfimprove.config.compose import compose
    from selfimprove.config import TinyModelConfig
    from selfimprove.models import load_model, load_tokenizer, render_prompts
    from selfimprove.models.tiny import save_tiny
    from selfimprove.stages.score_rl import episode_segments
    from selfimprove.tasks import build_task

    (cfg,) = compose(["recipe=score"])
    task = build_task(cfg.task)
    folder = save_tiny(TinyModelConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                       intermediate_size=64), tmp_path / "m", seed=0)
    tok = load_tokenizer(folder)
    tok.chat_template = CHAT
    model = load_model(folder, "float32", "cpu").eval()
    problems = [{"id": "a", "question": "12+30", "answer": "42"}, {"id": "b", "question": "5+6", "answer": "11"}]
    y1, y2 = [" 2+0=2,1+3=4\n#### 42 ", "5+6=12\n#### 12"], [" 2+0=2,1+3=4\n#### 42", "5+6=11\n#### 11"]
    rows = episode_segments(tok, task, problems, y1, y2, chat=True)
    turn2 = render_prompts(tok, [task.turn2(p, a, chat=True) for p, a in zip(problems, y1)], chat=True)
    for segments, p, rendered, b in zip(rows, problems, turn2, y2):
        assert segments[0] == f"<|user|>{task.prompt(p)}\n<|assistant|>"
        assert "".join(segments[:3]) == rendered and segments[3] == b  # the sampler's turn-2 prompt, verbatim
        assert segments[2] == f"\n<|user|>{task.instruction.strip()}\n<|assistant|>"
    got1, got3 = segment_logprobs(model, tok, rows, scored=(1, 3), rendered=True)
    for i, segments in enumerate(rows):
        ids = torch.tensor([tok("".join(segments), add_special_tokens=False)["input_ids"]])
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1], -1)
        bounds = [len(tok("".join(segments[:j]), add_special_tokens=False)["input_ids"]) for j in range(5)]
        for got, seg in ((got1, 1), (got3, 3)):
            want = sum((logp[j - 1, ids[0, j]] for j in range(bounds[seg], bounds[seg + 1])), torch.tensor(0.0))
            assert got[i].item() == pytest.approx(want.item(), abs=1e-4)
    # plain text: the second turn is the first turn's text, the attempt and the instruction
    assert episode_segments(tok, task, problems[:1], y1[:1], y2[:1], chat=False) == \
        [[task.prompt(problems[0]), y1[0], task.instruction, y2[0]]]


def test_a_template_that_rewrites_the_first_attempt_is_refused(tmp_path):
    from selfimprove.config.compose import compose
    from selfimprove.config import TinyModelConfig
    from selfimprove.models import load_tokenizer
    from selfimprove.models.tiny import save_tiny
    from selfimprove.stages import StageError
    from selfimprove.stages.score_rl import episode_segments
    from selfimprove.tasks import build_task

    (cfg,) = compose(["recipe=score"])
    task = build_task(cfg.task)
    tok = load_tokenizer(save_tiny(TinyModelConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                                   intermediate_size=64), tmp_path / "m", seed=0))
    tok.chat_template = CHAT.replace("{{ m['content'] }}", "{{ m['content'] | upper }}")
    with pytest.raises(StageError, match="model.chat_template=false"):
        episode_segments(tok, task, [{"id": "a", "question": "1+2", "answer": "3"}], ["x\n#### 3"], ["y"], chat=True)
