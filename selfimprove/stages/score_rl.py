"""SCoRe (Kumar et al., 2024): two-stage multi-turn RL that teaches a model to correct itself.

An episode is two turns: the policy answers (y1), the task's fixed correction instruction is
appended, the policy answers again (y2). Each step samples `k` episodes for each of
`problems_per_step` training problems, scores both turns with the binary answer reward, and
takes one REINFORCE step with a leave-one-out (RLOO) baseline per turn. Each turn's tokens are
weighted only by that turn's reward (the paper's gamma = 0), and each turn's reward carries a KL
penalty to the frozen base model, as in Ahmadian et al. (2024): the per-episode estimate
sum_tokens(log pi - log pi_ref) of the sampled tokens, subtracted from the reward.

    Stage I  (schedule entry 1): R1 = -beta2 * KL1            R2 = r2 - beta1 * KL2
    Stage II (schedule entry 2): R1 = r1 - beta1 * KL1        R2 = r2 + alpha * (r2 - r1) - beta1 * KL2
    loss = -mean over episodes of (A1 * log pi(y1 | x) + A2 * log pi(y2 | x, y1, instruction))

TRL's trainers are single-turn, so this loop is ours. Sampling reuses the transformers backend's
batched `generate`. A checkpoint (weights, optimizer, RNG state, step, per-step history) is
written every `save_steps` into the stage's folder; a killed stage resumes from the last one and
ends with the same weights as an uninterrupted run, because every step's problems and samples
are seeded by the step number alone. With `lora.enabled` only a LoRA adapter is trained (and
checkpointed) and the reference is the adapter-disabled model (score_lora.py); the published
model is merged.
"""
from __future__ import annotations

import math
import random
import shutil
import time
from pathlib import Path
from dataclasses import dataclass, field, replace
from typing import List, Optional

import torch

from .. import compute
from ..backends import SamplingParams, policy_sampler
from ..errors import Problems
from ..metrics import mean
from ..models import load_tokenizer, render_prompts
from ..tasks import has_second_turn, second_turn_missing
from ..rundir import read_jsonl, write_json
from ..training.options import LoraConfig
from ..score_lora import build_policy
from . import StageContext, StageError, StageResult, register_stage


@dataclass
class ScoreRLConfig:
    """SCoRe's multi-turn RL (stages/score_rl.py): REINFORCE with a leave-one-out baseline over
    `k` two-turn episodes per problem, a per-turn KL penalty to the base model, and per-turn
    rewards. `schedule[i - 1]` is the SCoRe stage run in outer iteration i: 1 = Stage I (reward
    turn 2 only, strong KL `beta2` on turn 1), 2 = Stage II (both turns, turn 2 shaped)."""

    kind: str = "score_rl"
    enabled: bool = True
    schedule: List[int] = field(default_factory=lambda: [1, 2])
    split: str = "train"
    steps: int = 200
    problems_per_step: int = 16
    k: int = 4  # episodes per problem (RLOO needs >= 2)
    temperature: float = 1.0
    max_new_tokens: int = 64
    alpha: float = 10.0  # Stage II shaping: r2 + alpha * (r2 - r1)
    beta1: float = 0.01  # KL to the base model on every turn (turn 2 only in Stage I)
    beta2: float = 0.1  # Stage I: KL on turn 1
    learning_rate: float = 1e-3
    # Stage II's shaped turn-2 reward spans -alpha..1+alpha, so its steps are larger; null: learning_rate
    stage2_learning_rate: Optional[float] = None
    max_grad_norm: float = 1.0
    save_steps: int = 10  # checkpoint interval (model, optimizer, RNG, step)
    loss_limit: float = 1e4  # |loss| above this (or non-finite) stops the stage
    # LoRA: only an adapter is trained; the KL reference is the adapter-disabled model (one copy of
    # the base weights); the published model is merged (selfimprove/score_lora.py)
    lora: LoraConfig = field(default_factory=LoraConfig)

    @staticmethod
    def check(name: str, s, cfg) -> list[str]:
        p = Problems()
        p.not_test(name, s.split)
        p.need(s.alpha >= 0, f"{name}.alpha must be >= 0 (got {s.alpha}); the paper's value is 10.")
        p.need(s.beta1 >= 0 and s.beta2 >= 0, f"{name}.beta1 and {name}.beta2 must be >= 0 (got {s.beta1}, "
                                              f"{s.beta2}); the paper's values are 0.01 and 0.1.")
        p.need(s.k >= 2, f"{name}.k must be >= 2: the leave-one-out baseline needs another episode (got {s.k}).")
        p.need(s.steps >= 1 and s.problems_per_step >= 1 and s.save_steps >= 1,
               f"{name}.steps, problems_per_step and save_steps must be >= 1.")
        p.need(s.learning_rate > 0 and s.loss_limit > 0 and (s.stage2_learning_rate is None or s.stage2_learning_rate > 0),
               f"{name}.learning_rate, stage2_learning_rate and loss_limit must be > 0.")
        p.need(set(s.schedule) <= {1, 2} and len(s.schedule) >= cfg.iterations,
               f"{name}.schedule lists the SCoRe stage (1 or 2) of each iteration and needs one per iteration: "
               f"got {list(s.schedule)} for iterations={cfg.iterations}; e.g. {name}.schedule=[1,2].")
        p.need(cfg.backend.name == "hf",
               f"'{name}' samples its episodes from the policy it updates every step, which only backend=hf does "
               f"(backend={cfg.backend.name} would need the new weights synced into its engine each step, not "
               f"built yet); run recipe=score with backend=hf.")
        p.need(has_second_turn(cfg.task), second_turn_missing(name, cfg))
        return p


# ----------------------------------------------------------------------------- the method
def turn_rewards(r1, r2, kl1, kl2, stage: int, alpha: float, beta1: float, beta2: float):
    """Per-turn rewards with the KL penalty folded in (tensors or floats, one value per episode)."""
    if stage == 1:  # decouple the attempts: turn 1 only stays close to the base model
        return -beta2 * kl1, r2 - beta1 * kl2
    return r1 - beta1 * kl1, r2 + alpha * (r2 - r1) - beta1 * kl2  # Stage II: reward progress


def rloo_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """rewards: [problems, k]. Each episode's baseline is the mean reward of the other k - 1
    episodes of its problem (leave-one-out), so the baseline never depends on the episode itself."""
    k = rewards.shape[-1]
    return rewards - (rewards.sum(-1, keepdim=True) - rewards) / (k - 1)


def policy_loss(logp1: torch.Tensor, logp2: torch.Tensor, adv1: torch.Tensor, adv2: torch.Tensor) -> torch.Tensor:
    """REINFORCE over both turns; logp_t is the summed log-probability of turn t's tokens."""
    return -(adv1.detach() * logp1 + adv2.detach() * logp2).mean()


# ----------------------------------------------------------------------------- log-probabilities
def episode_segments(tokenizer, task, problems: list[dict], y1: list[str], y2: list[str],
                     chat: bool) -> list[list[str]]:
    """Each episode as the four text segments its sampler was given or wrote: the turn-1 prompt,
    the first attempt, what lies between it and the second attempt (the instruction; with a chat
    template also the end of the assistant turn, the new user turn and the next generation
    prompt), and the second attempt. With `chat` the first segment holds the template's special
    tokens as text, exactly as the sampler rendered it."""
    if not chat:
        return [[task.prompt(p), a, task.instruction, b] for p, a, b in zip(problems, y1, y2)]
    rows, turn1 = [], {}  # turn 1 rendered once per problem (k episodes share it)
    for p, a, b in zip(problems, y1, y2):
        if p["id"] not in turn1:
            turn1[p["id"]] = render_prompts(tokenizer, [task.prompt(p)], chat=True)[0]
        first = turn1[p["id"]]
        second = render_prompts(tokenizer, [task.turn2(p, a, chat=True)], chat=True)[0]
        head = first + a.strip()
        if not second.startswith(head):
            raise StageError(
                f"the chat template of {tokenizer.name_or_path} renders the first attempt differently inside the "
                f"two-turn conversation than after turn 1's generation prompt (turn 1 ends {first[-40:]!r}; the "
                f"conversation has {second[len(first) - 40:len(head) + 20]!r}), so turn 1's tokens cannot be scored "
                "as sampled. Set model.chat_template=false to run SCoRe on plain text.")
        rows.append([first, a.strip(), second[len(head):], b])
    return rows


def segment_logprobs(model, tokenizer, rows: list[list[str]], scored: tuple[int, ...],
                     count: str | None = None, rendered: bool = False) -> list[torch.Tensor]:
    """Each row is a sequence given as text segments (e.g. prompt, attempt 1, instruction, attempt
    2). Returns, for each index in `scored`, the sum of log pi(token | everything before it) over
    that segment's tokens, one value per row. Segments are tokenized apart and joined, as the
    sampler saw them; one forward pass scores both turns of an episode. `count`: the compute
    count the pass's tokens are added to (tokens_trained, or tokens_reference for a frozen model).
    `rendered`: the first segment is chat-template text that holds its special tokens already (no
    BOS is added); template boundaries fall on special tokens, so tokenizing apart matches."""
    ids, owner = [], []  # token ids, and which segment each token belongs to
    for segments in rows:
        row_ids, row_owner = [], []
        for i, text in enumerate(segments):
            piece = tokenizer(text, add_special_tokens=i == 0 and not rendered)["input_ids"]
            row_ids += piece
            row_owner += [i] * len(piece)
        ids.append(row_ids)
        owner.append(row_owner)
    width = max(len(x) for x in ids)
    device = next(model.parameters()).device
    input_ids = torch.tensor([x + [tokenizer.pad_token_id] * (width - len(x)) for x in ids], device=device)
    attention = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in ids], device=device)
    owners = torch.tensor([x + [-1] * (width - len(x)) for x in owner], device=device)
    if count:
        compute.add(**{count: sum(len(x) for x in ids)})
    logits = model(input_ids=input_ids, attention_mask=attention).logits[:, :-1].float()
    token_logp = torch.log_softmax(logits, -1).gather(-1, input_ids[:, 1:, None]).squeeze(-1)
    return [(token_logp * (owners[:, 1:] == i)).sum(-1) for i in scored]


# ----------------------------------------------------------------------------- checkpoints
def _save(folder: Path, step: int, model, tokenizer, optimizer, history: list[dict]) -> None:
    """checkpoints/step-N: weights, optimizer and RNG state; state.json is written last, so a
    checkpoint without it was cut off by a kill and is ignored. Older checkpoints are removed."""
    path = folder / f"step-{step:06d}"
    if path.exists():
        shutil.rmtree(path)
    model.save_pretrained(path / "model")
    tokenizer.save_pretrained(path / "model")
    torch.save({"optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state()}, path / "optimizer.pt")
    write_json(path / "state.json", {"step": step, "history": history})
    for old in folder.glob("step-*"):
        if old != path:
            shutil.rmtree(old, ignore_errors=True)


def _last_checkpoint(folder: Path) -> tuple[Path, dict] | None:
    import json

    for path in sorted(folder.glob("step-*"), reverse=True):
        try:
            return path, json.loads((path / "state.json").read_text())
        except (OSError, ValueError):
            shutil.rmtree(path, ignore_errors=True)
    return None


# ----------------------------------------------------------------------------- the stage
def _inputs(cfg) -> dict[str, str]:
    roles = {"init": "policy", "ref": "base", "problems": cfg.split}
    if cfg.lora.enabled:  # an earlier LoRA score_rl's adapter, to go on training it (score_lora.py)
        roles["adapter"] = "policy_adapter?"
    return roles


@register_stage("score_rl", inputs=_inputs, schema=ScoreRLConfig)
def score_rl(ctx: StageContext) -> StageResult:
    c, task = ctx.cfg, ctx.task
    stage = int(c.schedule[ctx.iteration - 1])
    problems = read_jsonl(ctx.inputs["problems"])
    if len(problems) < c.problems_per_step:
        raise StageError(f"'{ctx.name}' draws {c.problems_per_step} problems per step but the {c.split} split has "
                         f"{len(problems)}; lower {ctx.name}.problems_per_step or enlarge the split.")
    folder = ctx.out / "checkpoints"
    found = _last_checkpoint(folder)
    weights = str(found[0] / "model") if found else ctx.inputs["init"]  # with LoRA a checkpoint holds the adapter
    tokenizer = load_tokenizer(weights, ctx.model_cfg.trust_remote_code, padding_side="left")
    models = build_policy(ctx, found[0] / "model" if found else None)
    policy = models.model
    base_lr = c.lora.learning_rate if c.lora.enabled and c.lora.learning_rate is not None else c.learning_rate
    lr = c.stage2_learning_rate if stage == 2 and c.stage2_learning_rate is not None else base_lr
    optimizer = torch.optim.Adam(models.trainable(), lr=lr)  # with LoRA: the adapter's parameters only
    done, history = 0, []
    if found:
        saved = torch.load(found[0] / "optimizer.pt", weights_only=False)
        optimizer.load_state_dict(saved["optimizer"])
        torch.set_rng_state(saved["torch_rng"])
        done, history = found[1]["step"], found[1]["history"]
    # Dropout off throughout: the log-probabilities that get gradients must be those of the policy
    # that sampled the tokens (eval mode changes no gradient, only dropout and the like).
    policy.eval()
    # with a chat template the second turn is a conversation; episode_segments gives the scorer
    # the same rendered text the sampler saw
    chat = bool(ctx.model_cfg.chat_template)
    sampler = policy_sampler(ctx.backend_cfg, policy, tokenizer, ctx.model_cfg, ctx.device, ctx.name, chat=chat)
    sampling = SamplingParams(n=c.k, temperature=c.temperature, max_new_tokens=c.max_new_tokens)
    seconds = {"sampling": 0.0, "update": 0.0}
    with ctx.ui.progress(f"{ctx.name}: SCoRe stage {'I' if stage == 1 else 'II'}", total=c.steps,
                         completed=done) as advance:
        for step in range(done, c.steps):
            start = time.time()
            with compute.metering() as meter:  # this step's tokens, kept in the checkpointed history
                batch = random.Random(ctx.seed * 1_000_003 + step).sample(problems, c.problems_per_step)
                seed = ctx.seed + 7919 * step
                firsts = sampler.generate([task.prompt(p) for p in batch], replace(sampling, seed=seed))
                y1 = [task.truncate(t) for texts in firsts for t in texts]
                episodes = [p for p in batch for _ in range(c.k)]
                prompts2 = [task.turn2(p, a, chat) for p, a in zip(episodes, y1)]
                outs2 = sampler.generate(prompts2, replace(sampling, n=1, seed=seed + 1))
                y2 = [task.truncate(texts[0]) for texts in outs2]
                sampled = time.time()

                r1 = torch.tensor([task.reward(y, p) for y, p in zip(y1, episodes)])
                r2 = torch.tensor([task.reward(y, p) for y, p in zip(y2, episodes)])
                rows = episode_segments(tokenizer, task, episodes, y1, y2, chat)
                logp1, logp2 = segment_logprobs(policy, tokenizer, rows, scored=(1, 3), count="tokens_trained",
                                                rendered=chat)
                with torch.no_grad(), models.reference() as ref:
                    ref1, ref2 = segment_logprobs(ref, tokenizer, rows, scored=(1, 3), count="tokens_reference",
                                                  rendered=chat)
                kl1, kl2 = logp1.detach() - ref1, logp2.detach() - ref2  # per-episode KL estimates
                R1, R2 = turn_rewards(r1, r2, kl1, kl2, stage, c.alpha, c.beta1, c.beta2)
                adv1 = rloo_advantages(R1.view(-1, c.k)).flatten()
                adv2 = rloo_advantages(R2.view(-1, c.k)).flatten()
                loss = policy_loss(logp1, logp2, adv1, adv2)
                if not math.isfinite(loss.item()) or abs(loss.item()) > c.loss_limit:
                    raise StageError(
                        f"'{ctx.name}' (SCoRe stage {stage}) loss is {loss.item():.4g} at step {step + 1} (limit "
                        f"{ctx.name}.loss_limit={c.loss_limit}; mean KL turn 1 {kl1.mean().item():.4g}, turn 2 "
                        f"{kl2.mean().item():.4g}; mean reward turn 1 {r1.mean().item():.3f}, turn 2 {r2.mean().item():.3f}). "
                        f"The last good checkpoint (step {done}) is kept in {folder}. Lower {ctx.name}.learning_rate "
                        f"or {ctx.name}.alpha.")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(models.trainable(), c.max_grad_norm)
                optimizer.step()
                seconds["sampling"] += sampled - start
                seconds["update"] += time.time() - sampled
                history.append({"loss": loss.item(), "r1": r1.mean().item(), "r2": r2.mean().item(),
                                "kl1": kl1.mean().item(), "kl2": kl2.mean().item(), "grad_norm": float(grad_norm),
                                "changed": mean([float(task.extract_answer(a) != task.extract_answer(b))
                                                 for a, b in zip(y1, y2)]), "compute": meter.counts})
            if (step + 1) % c.save_steps == 0 or step + 1 == c.steps:
                _save(folder, step + 1, policy, tokenizer, optimizer, history)
                done = step + 1
            advance(1)
    artifacts = models.publish(ctx.out)
    tokenizer.save_pretrained(ctx.out / "model")
    shutil.rmtree(folder, ignore_errors=True)
    return StageResult(artifacts, _metrics(stage, history, c, seconds, found[1]["step"] if found else 0))


def _metrics(stage: int, history: list[dict], c, seconds: dict, resumed_from: int) -> dict:
    """Training rewards at the start and end (sampled episodes, T=`temperature`) and throughput."""
    window = max(1, min(10, len(history) // 4))
    first, last = history[:window], history[-window:]
    busy = max(seconds["sampling"] + seconds["update"], 1e-9)
    ran = len(history) - resumed_from
    out = {"score_stage": stage, "steps": len(history), "episodes": len(history) * c.problems_per_step * c.k,
           "resumed_from_step": resumed_from}
    for key in ("r1", "r2", "kl1", "kl2", "changed"):
        out[f"train_{key}_first"] = round(mean([h[key] for h in first]), 4)
        out[f"train_{key}_last"] = round(mean([h[key] for h in last]), 4)
    out["train_loss_last"] = round(history[-1]["loss"], 4)
    out["episodes_per_s"] = round(ran * c.problems_per_step * c.k / busy, 2)
    out["time_share_sampling"] = round(seconds["sampling"] / busy, 3)
    out["time_share_update"] = round(seconds["update"] / busy, 3)
    # every step's tokens, those before a resume included (from the checkpointed history)
    for key in compute.COUNTS:
        out[key] = sum(h.get("compute", {}).get(key, 0) for h in history)
    return out
