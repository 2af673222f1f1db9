"""Judging for the built-in addition task: the additive 5-point rubric computed from the gold
answer, the EFT seed judgments it yields, held-out (correct, incorrect) pairs for measuring the
judge, and self-instruction (writing new problems in the task's format).

A response is " <steps>\n#### <answer>" with one step "x+y(+c)=z" per column (see arithmetic.py).
The five criteria (one point each, in the order of the paper's Figure 2, adapted; see
selfimprove/judges/templates/scratchpad_5pt.txt):

    form    an answer line "#### N" is present             (relevant: some information)
    work    the work is shown: well-formed steps x+y(+c)=z  (a substantial attempt)
    size    the answer has as many digits as the sum        (the basic elements right)
    close   the answer is right in all but one digit        (nearly there)
    answer  the answer is the correct sum                   (impeccable)

The EFT judgment recomputes the scratchpad column by column (its solving skill: the judge prompt
ends with the question) and after each correct step writes ":", the stated answer's digit for
that column and '=' or 'x'; then the stated answer's digits beyond the columns against the last
carry; then the points, one digit per criterion, and `Score: N`:

    " 3+1=4:4=,8+6=14:5x;1=\n11110\nScore: 4"      (83+61 asked, 154 stated)

Why this layout: a 0.5M-parameter model must both read the response and compare, and it learns
look-ups at fixed offsets far more easily than comparisons across the judgment. The stated
answer's last digit sits just before the question ("...#### 154\nQ: 83+61"), so its j-th digit
from the end is found the way solving finds each operand's j-th digit, and each '=' / 'x'
compares two characters two positions apart. Measured
on M1 (100 held-out pairs): the first layout (recomputed sum, then the copied answer, then the
points) left the judge not reading the response (wrong answers copied right 13% of the time) and
pairwise accuracy at 36%; copying the answer first fixed the copy (94%) but not the comparison
(digit marks right 21%); this layout gives 56% (EFT on the worked examples' problems) and 60%
with EFT on the training pool's problems, the recipe's default (63.7% on the 300 test pairs).
Wrong candidates are perturbations of the gold solution, one family per kind of mistake.
"""
from __future__ import annotations

import random
import re
from typing import Optional

from .columns import STEP_RE, answer_from as _answer_from, operands, steps as _steps

CRITERIA = ("form", "work", "size", "close", "answer")
QUESTION_RE = re.compile(r"^([1-9]\d*|0)\+([1-9]\d*|0)$")


def points(question: str, response: str) -> dict[str, int]:
    """The rubric's points for `response` to `question`, computed with the gold answer."""
    a, b = operands(question)
    answer, gold = _stated_answer(response), str(a + b)
    idx = response.find("####")
    scratch = (response[:idx] if idx >= 0 else response).strip()
    steps = [s.strip() for s in scratch.split(",")] if scratch else []
    same_size = answer is not None and len(answer) == len(gold)
    return {"form": int(answer is not None),
            "work": int(bool(steps) and all(STEP_RE.match(s) for s in steps)),
            "size": int(same_size),
            "close": int(same_size and sum(x != y for x, y in zip(answer, gold)) <= 1),
            "answer": int(answer == gold)}


def judgment(question: str, response: str) -> tuple[str, int]:
    """The EFT target: copy the stated answer, recompute column by column checking each of its
    digits, award the points, end with the score."""
    a, b = operands(question)
    got = points(question, response)
    total = sum(got.values())
    awarded = "".join(str(got[c]) for c in CRITERIA)  # one digit per criterion, in CRITERIA's order
    stated = _stated_answer(response) or "-"
    return f" {column_checks(a, b, stated)}\n{awarded}\nScore: {total}", total


def column_checks(a: int, b: int, stated: str) -> str:
    """Each correct step "x+y(+c)=z" followed by ":", the stated answer's digit for that column
    (units first; '_' if it has none) and '=' if it is z's last digit, else 'x'; then ";", the
    stated answer's digits beyond the columns ('_' if none) and '=' if they are the last carry."""
    steps = _steps(a, b)
    digits = stated[::-1] if stated != "-" else ""
    out = []
    for j, step in enumerate(steps):
        z = int(step.rsplit("=", 1)[1])
        d = digits[j] if j < len(digits) else "_"
        out.append(f"{step}:{d}{'=' if d == str(z % 10) else 'x'}")
    carry = str(z // 10) if z >= 10 else "_"
    rest = stated[: len(stated) - len(steps)] if stated != "-" and len(stated) > len(steps) else "_"
    return ",".join(out) + f";{rest}{'=' if rest == carry else 'x'}"


def _stated_answer(response: str) -> Optional[str]:
    idx = response.find("####")
    m = re.match(r"\s*(-?\d+)", response[idx + 4:]) if idx >= 0 else None
    return m.group(1) if m else None


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
