"""Two-turn addition for SCoRe: answer, read a fixed correction instruction, answer again.

    turn 1 prompt:  "Q: 473+356\nA:"
    first attempt:  " 3+6=9,7+5=12,4+3+1=8\n#### 829"              (7+5 is not 12: a wrong column)
    turn 2 prompt:  turn 1 prompt + first attempt + the instruction of `correction_template`
                    = "Q: 473+356\nA: 3+6=9,...\n#### 829\nCheck each step and fix any error.\nA:"
    second attempt: " 3+6=9,7+5=12,4+3+1=8\n#### 829"

The instruction never says whether the first attempt was right (intrinsic self-correction). A
wrong column sum is carried through to the answer, so the error is visible in the scratchpad: a
model can find it by re-adding each column.

The seed data stands in for what a pretrained model brings to SCoRe, with its habits set in the
open by options:
- a blind spot: in `blind_spot_rate` of the worked examples that have a column summing to exactly
  10, that column is written as 11 (e.g. "3+7=11"). The base model learns it, so its greedy first
  attempts carry a systematic, checkable error;
- correction demonstrations (one per worked example): the first attempt has the blind-spot error
  (at the same rate) or else, in `demo_first_error_rate` of the rest, a random one-column slip; a
  wrong first attempt is fixed in `demo_fix_rate` of them and copied otherwise; a right one is
  broken by a new slip in `demo_break_rate` of them. So the base model knows the two-turn format
  and sometimes fixes, sometimes copies, sometimes breaks (the paper's base model changes right
  answers more often than it repairs wrong ones).
"""
from __future__ import annotations

import random

from . import CorrectionTask, register_task
from .arithmetic import Arithmetic
from .columns import column_sums, operands, worked_solution

def attempt(a: int, b: int, slip: tuple[int, int] | None = None) -> str:
    """A worked solution; with `slip=(column, delta)` that column's sum is off by delta and the
    error propagates (its digit and the carry into the next column follow the wrong sum)."""
    return worked_solution(a, b, slip)


def random_slip(a: int, b: int, rng: random.Random) -> tuple[int, int]:
    """A column and +-1 such that the wrong sum stays a plausible column sum (0..19)."""
    sums = [total for *_, total in column_sums(a, b)]
    column = rng.randrange(len(sums))
    delta = 1 if sums[column] == 0 else -1 if sums[column] == 19 else rng.choice((-1, 1))
    return column, delta


def blind_spot(a: int, b: int) -> tuple[int, int] | None:
    """The base model's systematic error: the first column summing to exactly 10 written as 11."""
    return next(((i, 1) for i, (*_, total) in enumerate(column_sums(a, b)) if total == 10), None)


@register_task("arithmetic_correction")
class ArithmeticCorrection(Arithmetic, CorrectionTask):
    def splits(self) -> dict[str, list[dict]]:
        out = super().splits()
        rng = random.Random(self.cfg.data_seed + 2)
        for p in out["seed"]:  # the worked examples teach the blind spot at its rate
            spot = blind_spot(*operands(p["question"]))
            if spot and rng.random() < self.cfg.blind_spot_rate:
                p["solution"] = attempt(*operands(p["question"]), spot)
        return out

    def extra_seed_rows(self, problems: list[dict]) -> list[dict]:
        """One correction demonstration per worked example (seeded by `data_seed`)."""
        c = self.cfg
        rng = random.Random(c.data_seed + 1)
        rows = []
        for p in problems[: c.correction_demos]:
            a, b = operands(p["question"])
            right = attempt(a, b)
            spot = blind_spot(a, b)
            if spot and rng.random() < c.blind_spot_rate:
                wrong = attempt(a, b, spot)
            elif rng.random() < c.demo_first_error_rate:
                wrong = attempt(a, b, random_slip(a, b, rng))
            else:
                wrong = None
            if wrong:  # a wrong first attempt: fixed, or copied
                first, second = wrong, right if rng.random() < c.demo_fix_rate else wrong
            else:  # a right first attempt: kept, or broken by a new slip
                first, second = right, attempt(a, b, random_slip(a, b, rng)) if rng.random() < c.demo_break_rate else right
            rows.append({"prompt": self.turn2_prompt(p, first), "completion": second, "prompt_id": p["id"]})
        return rows
