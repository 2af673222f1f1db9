"""V-STaR's query set D_query: the training problems together with the problems of the SFT data
(the paper samples the GSM8K training problems, whose gold solutions are D_SFT). Written under
the `train` artifact, so generate and score use it unchanged; the verifier buffer then holds, for
a seed problem, its worked solution (correct) next to the generator's wrong attempts."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List

from ..rundir import read_jsonl, write_jsonl
from . import StageContext, StageResult, register_stage


@dataclass
class QueriesConfig:
    """V-STaR's D_query: the problem splits to sample in each iteration, published as `output`."""

    kind: str = "queries"
    enabled: bool = True
    splits: List[str] = field(default_factory=lambda: ["seed", "train"])
    output: str = "train"


@register_stage("queries", inputs=lambda cfg: {split: split for split in cfg.splits}, schema=QueriesConfig)
def queries(ctx: StageContext) -> StageResult:
    rows = [p for split in ctx.cfg.splits for p in read_jsonl(ctx.inputs[split])]
    write_jsonl(ctx.out / "queries.jsonl", rows)
    return StageResult({ctx.cfg.output: "queries.jsonl"},
                       {"problems": len(rows), **{f"{s}_problems": len(read_jsonl(ctx.inputs[s])) for s in ctx.cfg.splits}})
