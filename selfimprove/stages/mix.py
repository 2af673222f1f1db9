"""Easy-to-hard: the round's training data, drawn from the paper's mixture (easy_to_hard.mixture),
and the accumulated self-labelled rounds, which live for the whole run (artifact `self_labels`)."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Optional

from ..errors import Problems
from ..easy_to_hard import mixture
from ..rundir import read_jsonl, write_jsonl
from . import StageContext, StageError, StageResult, register_stage


@dataclass
class MixConfig:
    """The paper's training mixture for a round: the newest self-labelled set with probability
    `newest_share`, the rest shared between the original labelled data (weight: its number of
    lengths) and each older round (weight 1). Rows are drawn with replacement; `rows` should be
    the train stage's steps x batch size, so one pass is exactly the mixture."""

    kind: str = "mix"
    enabled: bool = True
    rows: int = 64000
    newest_share: float = 0.5
    original_weight: Optional[float] = None  # null: task.start_length (the paper: number of lengths)

    @staticmethod
    def check(name: str, s, cfg) -> list[str]:
        p = Problems()
        p.need(s.rows >= 1, f"{name}.rows must be >= 1 (got {s.rows}); set it to train.steps x train.batch_size.")
        p.need(0 < s.newest_share <= 1, f"{name}.newest_share must be in (0, 1] (got {s.newest_share}); the paper's is 0.5.")
        return p


@register_stage("mix", inputs=lambda cfg: {"original": "seed_data", "newest": "round_labels?", "older": "self_labels?"}, schema=MixConfig)
def mix(ctx: StageContext) -> StageResult:
    c = ctx.cfg
    original = [{"prompt": r["prompt"], "completion": r["completion"], "prompt_id": r["prompt_id"], "round": 0}
                for r in read_jsonl(ctx.inputs["original"])]
    if not original:
        raise StageError("mix: the original labelled data (seed_data) is empty; raise task.seed_examples.")
    older_rows = read_jsonl(ctx.inputs["older"]) if ctx.inputs.get("older") else []
    newest = read_jsonl(ctx.inputs["newest"]) if ctx.inputs.get("newest") else []
    older: dict[int, list[dict]] = defaultdict(list)
    for r in older_rows:
        older[r["round"]].append(r)
    weight = c.original_weight if c.original_weight is not None else float(ctx.task.cfg.start_length)
    rows = mixture(original, dict(older), newest, c.rows, c.newest_share, weight, ctx.seed)
    train = [{"prompt": r["prompt"], "completion": r["completion"], "prompt_id": r["prompt_id"],
              "source": f"round_{r['round']}"} for r in rows]
    write_jsonl(ctx.out / "train_data.jsonl", train)
    write_jsonl(ctx.out / "self_labels.jsonl", older_rows + newest)
    share = lambda pred: round(sum(pred(r) for r in rows) / len(rows), 4)  # noqa: E731
    return StageResult({"train_data": "train_data.jsonl", "self_labels": "self_labels.jsonl"},
                       {"rows": len(train), "share_original": share(lambda r: r["round"] == 0),
                        "share_newest": share(lambda r: r["round"] == ctx.iteration and bool(newest)),
                        "self_labels": len(older_rows) + len(newest), "rounds_mixed": len(older) + bool(newest)})
