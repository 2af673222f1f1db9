"""Two-turn addition for SCoRe: answer, read a fixed correction instruction, answer again.

    turn 1 prompt:  "Q: 478+356\nA:"
    first attempt:  " 8+6=14,7+5+1=12,4+3+1=8\n#### 824"          (a slip: 7+5+1 is not 12)
    turn 2 prompt:  turn 1 prompt + correction_template.format(attempt=first attempt)
                    = "Q: 478+356\nA: 8+6=14,...\n#### 824\nCheck each step and fix any error.\nA:"
    second attempt: " 8+6=14,7+5+1=13,4+3+1=8\n#### 834"

The instruction never says whether the first attempt was right (intrinsic self-correction).
A slip changes one column's sum by one and carries the wrong sum through to the answer, so the
error is visible in the scratchpad: a model can find it by re-adding each column.

The seed data adds correction demonstrations to the worked examples. They stand in for what a
pretrained model brings to SCoRe: it knows the two-turn format and sometimes fixes a wrong first
attempt, but it also sometimes copies a wrong one and sometimes breaks a right one (the paper's
base model changes correct answers more often than it repairs wrong ones). The shares are
options, so that the base model's Δ i→c and Δ c→i are non-trivial and set in the open.
"""
from __future__ import annotations

import random

from . import register_task
from .arithmetic import Arithmetic

PLACEHOLDER = "{attempt}"


def attempt(a: int, b: int, slip: tuple[int, int] | None = None) -> str:
    """A worked solution; with `slip=(column, delta)` that column's sum is off by delta and the
    error propagates (its digit and the carry into the next column follow the wrong sum)."""
    xs, ys = str(a)[::-1], str(b)[::-1]
    steps, digits, carry = [], [], 0
    for i in range(max(len(xs), len(ys))):
        da = int(xs[i]) if i < len(xs) else 0
        db = int(ys[i]) if i < len(ys) else 0
        total = da + db + carry + (slip[1] if slip and slip[0] == i else 0)
        steps.append(f"{da}+{db}" + (f"+{carry}" if carry else "") + f"={total}")
        digits.append(total % 10)
        carry = total // 10
    if carry:
        digits.append(carry)
    answer = int("".join(str(d) for d in reversed(digits)))
    return f" {','.join(steps)}\n#### {answer}"


def random_slip(a: int, b: int, rng: random.Random) -> tuple[int, int]:
    """A column and +-1 such that the wrong sum stays a plausible column sum (0..19)."""
    xs, ys = str(a)[::-1], str(b)[::-1]
    column = rng.randrange(max(len(xs), len(ys)))
    sums, carry = [], 0
    for i in range(column + 1):
        sums.append((int(xs[i]) if i < len(xs) else 0) + (int(ys[i]) if i < len(ys) else 0) + carry)
        carry = sums[-1] // 10
    delta = 1 if sums[column] == 0 else -1 if sums[column] == 19 else rng.choice((-1, 1))
    return column, delta


@register_task("arithmetic_correction")
class ArithmeticCorrection(Arithmetic):
    @property
    def instruction(self) -> str:
        """What follows the first attempt: the template after its leading {attempt} placeholder."""
        return self.cfg.correction_template[len(PLACEHOLDER):]

    def turn2_prompt(self, problem: dict, first_attempt: str) -> str:
        """The second turn's prompt: the first turn, the first attempt and the fixed instruction."""
        return self.prompt(problem) + first_attempt + self.instruction

    def extra_seed_rows(self, problems: list[dict]) -> list[dict]:
        """One correction demonstration per worked example (seeded by `data_seed`)."""
        c = self.cfg
        rng = random.Random(c.data_seed + 1)
        rows = []
        for p in problems[: c.correction_demos]:
            a, b = (int(x) for x in p["question"].split("+"))
            right = attempt(a, b)
            wrong = attempt(a, b, random_slip(a, b, rng))
            if rng.random() < c.demo_first_error_rate:  # a wrong first attempt: fixed, or copied
                first, second = wrong, right if rng.random() < c.demo_fix_rate else wrong
            else:  # a right first attempt: kept, or broken by a new slip
                first, second = right, wrong if rng.random() < c.demo_break_rate else right
            rows.append({"prompt": self.turn2_prompt(p, first), "completion": second, "prompt_id": p["id"]})
        return rows
