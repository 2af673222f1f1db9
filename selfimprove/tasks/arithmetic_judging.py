"""Judging for the built-in addition task: the additive 5-point rubric computed from the gold
answer, the EFT seed judgments it yields, held-out (correct, incorrect) pairs for measuring the
judge, and self-instruction (writing new problems in the task's format).

A response is " <steps>\\n#### <answer>" with one step "x+y(+c)=z" per column (see arithmetic.py).
The five criteria (one point each, as in the paper's Figure 2, adapted; see
selfimprove/judges/templates/scratchpad_5pt.txt):

    form    an answer line is present
    pad     one well-formed step per column of the longer operand
    sums    every step's own arithmetic is right (steps present)
    digits  the steps equal the correct scratchpad (right digits and carries)
    answer  the final answer is the correct sum

The EFT judgment first recomputes the correct scratchpad and sum (the judge "checks the work"),
copies the answer the response states (so that comparing the two is a local step), then writes
the points awarded, one digit per criterion in the order above, and ends with `Score: N`:
" 3+1=4,8+6=14 94 95 11110\nScore: 4". (Short, because every character is a token of
a character-level model's context and compute.) Wrong candidates are perturbations of the gold
solution, one family per kind of mistake the model makes, so every score 0-5 occurs.
"""
from __future__ import annotations

import random
import re
from typing import Optional

from .arithmetic import scratchpad

CRITERIA = ("form", "pad", "sums", "digits", "answer")
STEP_RE = re.compile(r"^(\d)\+(\d)(?:\+(\d))?=(\d+)$")
QUESTION_RE = re.compile(r"^([1-9]\d*|0)\+([1-9]\d*|0)$")


def operands(question: str) -> tuple[int, int]:
    a, b = question.split("+")
    return int(a), int(b)


def points(question: str, response: str) -> dict[str, int]:
    """The rubric's points for `response` to `question`, computed with the gold answer."""
    a, b = operands(question)
    idx = response.find("####")
    m = re.match(r"\s*(-?\d+)", response[idx + 4:]) if idx >= 0 else None
    answer = m.group(1) if m else None
    scratch = (response[:idx] if idx >= 0 else response).strip()
    steps = [s.strip() for s in scratch.split(",")] if scratch else []
    parsed = [STEP_RE.match(s) for s in steps]
    well_formed = bool(steps) and all(parsed)
    columns = max(len(str(a)), len(str(b)))
    sums_ok = well_formed and all(int(p[1]) + int(p[2]) + int(p[3] or 0) == int(p[4]) for p in parsed)
    return {"form": int(answer is not None),
            "pad": int(well_formed and len(steps) == columns),
            "sums": int(sums_ok),
            "digits": int(",".join(steps) == scratchpad(a, b)),
            "answer": int(answer is not None and int(answer) == a + b)}


def judgment(question: str, response: str) -> tuple[str, int]:
    """The EFT target: recompute the sum, award points criterion by criterion, end with the score."""
    a, b = operands(question)
    got = points(question, response)
    total = sum(got.values())
    awarded = "".join(str(got[c]) for c in CRITERIA)  # one digit per criterion, in CRITERIA's order
    return f" {scratchpad(a, b)} {a + b} {_stated_answer(response) or '-'} {awarded}\nScore: {total}", total


def _stated_answer(response: str) -> Optional[str]:
    idx = response.find("####")
    m = re.match(r"\s*(-?\d+)", response[idx + 4:]) if idx >= 0 else None
    return m.group(1) if m else None


def _steps(a: int, b: int) -> list[str]:
    return scratchpad(a, b).split(",")


def _answer_from(steps: list[str]) -> str:
    """The answer a solver would write from (possibly wrong) steps: their sums, read as columns."""
    digits, carry = [], 0
    for s in steps:
        m = STEP_RE.match(s)
        z = int(m[4]) if m else 0
        digits.append(str(z % 10))
        carry = z // 10
    text = (str(carry) if carry else "") + "".join(reversed(digits))
    return text.lstrip("0") or "0"


def perturb(a: int, b: int, family: str, rng: random.Random) -> str:
    """A candidate response to a+b with one kind of mistake (or none: 'gold')."""
    steps, gold = _steps(a, b), str(a + b)
    i = rng.randrange(len(steps))
    if family == "gold":
        return f" {','.join(steps)}\n#### {gold}"
    if family == "answer_digit":  # right work, a wrong digit copied into the answer
        pos = rng.randrange(len(gold))
        wrong = gold[:pos] + str((int(gold[pos]) + rng.randint(1, 9)) % 10) + gold[pos + 1:]
        return f" {','.join(steps)}\n#### {wrong.lstrip('0') or '0'}"
    if family == "bad_sum":  # one step adds wrongly (e.g. a forgotten carry); the answer follows
        m = STEP_RE.match(steps[i])
        z = int(m[4]) + rng.choice([-1, 1]) if int(m[4]) > 0 else 1
        steps[i] = steps[i].rsplit("=", 1)[0] + f"={z}"
        return f" {','.join(steps)}\n#### {_answer_from(steps)}"
    if family == "bad_digit":  # one step reads a wrong digit but adds it correctly
        m = STEP_RE.match(steps[i])
        x = (int(m[1]) + rng.randint(1, 9)) % 10
        rest = int(m[2]) + int(m[3] or 0)
        steps[i] = f"{x}+{m[2]}" + (f"+{m[3]}" if m[3] else "") + f"={x + rest}"
        return f" {','.join(steps)}\n#### {_answer_from(steps)}"
    if family == "missing_step" and len(steps) > 1:  # stops a column early
        del steps[-1]
        return f" {','.join(steps)}\n#### {_answer_from(steps)}"
    if family == "no_answer":  # right work, never states the answer
        return f" {','.join(steps)}"
    if family == "no_pad":  # an answer without the work, right or wrong
        guess = gold if rng.random() < 0.5 else str(a + b + rng.choice([-10, -1, 1, 10]))
        return f"\n#### {guess}"
    return " " + "".join(rng.choice("0123456789+=,") for _ in range(rng.randint(3, 12)))  # noise


# Families and their shares in the EFT data: picked so that scores 0-5 are all common (the
# paper balanced its EFT score distribution too); `gold` is frequent, the judge must learn 5s.
FAMILIES = {"gold": 0.3, "answer_digit": 0.12, "bad_sum": 0.14, "bad_digit": 0.12, "missing_step": 0.1,
            "no_answer": 0.07, "no_pad": 0.09, "noise": 0.06}
# Held-out pairs for judge accuracy: gold vs a response with a wrong final answer.
WRONG_ANSWER_FAMILIES = ("answer_digit", "bad_sum", "bad_digit", "missing_step")


def eft_examples(problems: list[dict], per_problem: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    names, weights = list(FAMILIES), list(FAMILIES.values())
    rows = []
    for p in problems:
        a, b = operands(p["question"])
        for j in range(per_problem):
            family = rng.choices(names, weights)[0]
            response = perturb(a, b, family, rng)
            text, score = judgment(p["question"], response)
            rows.append({"problem_id": p["id"], "question": p["question"], "response": response, "family": family,
                         "judgment": text, "score": score})
    return rows


def judge_pairs(problems: list[dict], seed: int) -> list[dict]:
    """One (correct, incorrect) pair per problem; the incorrect response has a wrong answer."""
    rng = random.Random(seed)
    out = []
    for i, p in enumerate(problems):
        a, b = operands(p["question"])
        family = WRONG_ANSWER_FAMILIES[i % len(WRONG_ANSWER_FAMILIES)]
        out.append({"problem_id": p["id"], "question": p["question"], "good": perturb(a, b, "gold", rng),
                    "bad": perturb(a, b, family, rng), "family": family})
    return out


def instruction_prompt(examples: list[str]) -> str:
    """Few-shot self-instruction: some problems, then the start of a new one."""
    return "New problem.\n" + "".join(f"Q: {q}\n" for q in examples) + "Q:"


def parse_instruction(text: str, max_digits: int) -> Optional[str]:
    """The problem a self-instruction completion wrote, if it is one in the task's format."""
    line = text.strip().split("\n", 1)[0].strip() if isinstance(text, str) else ""
    m = QUESTION_RE.match(line)
    if not m or max(len(m[1]), len(m[2])) > max_digits:
        return None
    return line
