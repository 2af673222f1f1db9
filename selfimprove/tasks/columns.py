"""Column addition, the arithmetic itself (a leaf module: the built-in tasks and the judge's seed
data all build on it and nothing here imports them).

A worked solution adds one column at a time, least significant first, with the carry:
478+356 -> steps "8+6=14", "7+5+1=13", "4+3+1=8", answer 834.
"""
from __future__ import annotations

import re

STEP_RE = re.compile(r"^(\d)\+(\d)(?:\+(\d))?=(\d+)$")


def operands(question: str) -> tuple[int, int]:
    a, b = question.split("+")
    return int(a), int(b)


def column_sums(a: int, b: int, slip: tuple[int, int] | None = None) -> list[tuple[int, int, int, int]]:
    """(digit of a, digit of b, carry in, column sum) per column, units first. With
    `slip=(column, delta)` that column's sum is off by delta and the error propagates through the
    carry, as a solver's slip would."""
    xs, ys = str(a)[::-1], str(b)[::-1]
    out, carry = [], 0
    for i in range(max(len(xs), len(ys))):
        da = int(xs[i]) if i < len(xs) else 0
        db = int(ys[i]) if i < len(ys) else 0
        total = da + db + carry + (slip[1] if slip and slip[0] == i else 0)
        out.append((da, db, carry, total))
        carry = total // 10
    return out


def step_text(da: int, db: int, carry: int, total: int) -> str:
    return f"{da}+{db}" + (f"+{carry}" if carry else "") + f"={total}"


def steps(a: int, b: int, slip: tuple[int, int] | None = None) -> list[str]:
    return [step_text(*c) for c in column_sums(a, b, slip)]


def answer_from(step_texts: list[str]) -> str:
    """The answer a solver writes from (possibly wrong) steps: their sums' last digits read as
    columns, the last carry in front. A step that does not parse counts as 0."""
    digits, carry = [], 0
    for s in step_texts:
        m = STEP_RE.match(s)
        z = int(m[4]) if m else 0
        digits.append(str(z % 10))
        carry = z // 10
    text = (str(carry) if carry else "") + "".join(reversed(digits))
    return text.lstrip("0") or "0"


def worked_solution(a: int, b: int, slip: tuple[int, int] | None = None) -> str:
    """The scratchpad completion: " 8+6=14,7+5+1=13,4+3+1=8\\n#### 834" (with a slip, the answer
    follows the wrong steps)."""
    s = steps(a, b, slip)
    return f" {','.join(s)}\n#### {answer_from(s)}"
