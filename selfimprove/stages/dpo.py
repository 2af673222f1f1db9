"""Direct preference optimisation with TRL's DPOTrainer on prompt/chosen/rejected rows.

Self-Rewarding trains the policy on its own judged pairs (continuing from the previous model,
which is also the reference); V-STaR trains a verifier on correct x incorrect solutions from
the SFT model (published as the `verifier` artifact by setting `output`). The reference model is
the initial weights, frozen: TRL copies them when no LoRA adapter is used, and disables the
adapter to get reference log-probs when one is. Checkpointing, resume, the NaN guard and LoRA
merging are the shared trainer's (`training.fit`). Compute: `tokens_trained` counts the chosen and the
rejected sequence of each pair (each with its prompt); `tokens_reference` the reference's forward.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..errors import Problems
from ..training.fit import fit, training_rows
from ..training.launch import data_parallel_or
from ..training.options import TrainerConfig
from . import StageContext, StageResult, register_stage


@dataclass
class DPOConfig(TrainerConfig):
    """Direct preference optimisation with TRL's DPOTrainer on prompt/chosen/rejected rows. The
    reference model is the initial weights (`init`), frozen."""

    kind: str = "dpo"
    init: str = "policy"
    data: str = "pairs"
    output: str = "policy"  # the artifact name the trained model is published under
    beta: float = 0.1
    loss_type: str = "sigmoid"  # TRL's loss_type: sigmoid (DPO), ipo, hinge, ...
    # Iterative RPO adds an NLL term on the chosen response: e.g. rpo_alpha=1.0 (null: pure DPO)
    rpo_alpha: Optional[float] = None
    learning_rate: float = 5e-7
    steps: int = 100

    @staticmethod
    def check(name: str, s, cfg) -> list[str]:
        p = Problems(TrainerConfig.check(name, s, cfg))
        p.need(s.beta > 0, f"{name}.beta must be > 0 (got {s.beta}); the paper's value is 0.1.")
        p.need(s.rpo_alpha is None or s.rpo_alpha >= 0, f"{name}.rpo_alpha must be >= 0 or null (got {s.rpo_alpha}).")
        return p


def _inputs(cfg) -> dict[str, str]:
    return {"data": cfg.data, "init": cfg.init}


@register_stage("dpo", inputs=_inputs, schema=DPOConfig)
def dpo(ctx: StageContext) -> StageResult:
    return data_parallel_or(_train, ctx)


def _train(ctx: StageContext) -> StageResult:
    from trl import DPOConfig, DPOTrainer

    cfg = ctx.cfg
    rows = training_rows(ctx, "No preference pair was built: see the pair stage's counts (ties, unparseable "
                              "judgments, problems without both a correct and an incorrect sample).")
    if ctx.model_cfg.chat_template:
        def turn(role, text):
            return [{"role": role, "content": text}]

        pairs = [{"prompt": turn("user", r["prompt"]), "chosen": turn("assistant", r["chosen"]),
                  "rejected": turn("assistant", r["rejected"])} for r in rows]
    else:
        pairs = [{"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"]} for r in rows]
    extra = {"beta": cfg.beta, "loss_type": [cfg.loss_type]}
    if cfg.rpo_alpha is not None:  # Iterative RPO: DPO + NLL on the chosen response
        extra["loss_type"], extra["loss_weights"] = [cfg.loss_type, "sft"], [1.0, cfg.rpo_alpha]
    run = fit(ctx, DPOTrainer, DPOConfig, pairs, extra)
    logged = {key.replace("rewards/", "reward_"): round(value, 4) for key, value in run.logs.items()
              if key.startswith("rewards/")}  # accuracies, margins, chosen, rejected (last logged step)
    metrics = run.metrics(cfg, len(rows))
    # TRL runs the frozen reference forward on every training batch (no precompute_ref_log_probs):
    # forward-only tokens, 2N each, on top of the policy's forward + backward
    metrics["tokens_reference"] = metrics["tokens_trained"]
    return StageResult({cfg.output: "model"}, {**metrics, "pairs": len(rows), **logged})
