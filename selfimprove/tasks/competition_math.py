"""MATH-style competition problems (Hendrycks et al., 2021): LaTeX answers, checked for symbolic
equivalence with math-verify (`pip install "selfimprove[math]"`).

    prompt:      "Problem: What is $\\frac{1}{2} + \\frac{1}{3}$?\nSolution:"
    hinted:      "Problem: What is $\\frac{1}{2} + \\frac{1}{3}$? (The answer is \\frac{5}{6}.)\nSolution:"
    completion:  " Over a common denominator, ... = \\boxed{\\frac{5}{6}}."

Data: JSONL files (`train_path`, `test_path`) with one object a line: `problem`, and `solution`
(a worked solution whose last \\boxed{} is the answer) and/or `answer` (the final answer in
LaTeX); `level` ("Level 3" or 3) sets the difficulty. Or, when both paths are null, the
Hugging Face dataset `hf_dataset`. Splits, few-shot exemplars and `val` work as for GSM8K.

The checker is math-verify: `\\frac{1}{2}`, `0.5` and `1/2` are one answer, as are
`\\sqrt{4}` and `2`, or `(1,2]` written with `\\left(`. Majority voting groups answers by their
extracted LaTeX string, so equal values written differently count as different votes.
"""
from __future__ import annotations

import re
from typing import Optional

from . import TaskDataError, register_task
from .gsm8k import GSM8K, _boxed_contents

NEW_PROBLEM_RE = re.compile(r"\n\s*Problem\s*:")
ANSWER_IS_RE = re.compile(r"answer is\s*:?\s*\$?([^\n$]+?)\$?\s*(?:\.\s|\.$|$|\n)", re.IGNORECASE)


def _clean(latex: str) -> str:
    return re.sub(r"\s+", " ", latex).strip().strip("$ ").rstrip(".")


def final_answer(text: str) -> Optional[str]:
    """The last \\boxed{} content, else the last "the answer is ...": the string majority voting
    groups by. None when the text states no answer."""
    boxed = _boxed_contents(text)
    if boxed:
        return _clean(boxed[-1])
    found = ANSWER_IS_RE.findall(text)
    return _clean(found[-1]) if found else None


def _math_row(raw, where: str) -> dict:
    if not isinstance(raw, dict) or not isinstance(raw.get("problem"), str) or not raw["problem"].strip():
        raise TaskDataError(f"{where}: expected a JSON object with a non-empty 'problem' string "
                            f"(and 'solution' and/or 'answer'), got {sorted(raw) if isinstance(raw, dict) else raw!r}")
    solution = raw.get("solution") if isinstance(raw.get("solution"), str) else None
    gold = raw.get("answer") if isinstance(raw.get("answer"), str) and raw["answer"].strip() else None
    gold = gold or (final_answer(solution) if solution else None)
    if gold is None:
        raise TaskDataError(f"{where}: no answer: give 'answer' (LaTeX) or a 'solution' ending in \\boxed{{...}}")
    level = re.search(r"\d+", str(raw.get("level", "")))
    return {"question": raw["problem"].strip(), "solution": solution or f"The answer is $\\boxed{{{gold}}}$.",
            "gold": _clean(gold), "level": int(level.group()) if level else 0}


@register_task("math")
class CompetitionMath(GSM8K):
    row = staticmethod(_math_row)
    row_example = '{"problem": ..., "solution": "... \\\\boxed{ANSWER}"}'

    def __init__(self, cfg):
        try:
            import math_verify  # noqa: F401
        except ImportError:
            raise TaskDataError('task=math checks answers with math-verify, which is not installed: '
                                'pip install "selfimprove[math]"') from None
        super().__init__(cfg)

    def _problem(self, row: dict, split: str, with_solution: bool) -> dict:
        p = {"id": f"{split}-{row['line']}", "question": row["question"], "answer": row["gold"],
             "difficulty": row["level"]}
        if with_solution:
            p["solution"] = " " + row["solution"].strip()
        return p

    @staticmethod
    def _qa(problem: dict, hint: bool) -> str:
        hinted = f" (The answer is {problem['answer']}.)" if hint else ""
        return f"Problem: {problem['question']}{hinted}\nSolution:"

    def extract_answer(self, text: str) -> Optional[str]:
        return final_answer(self.truncate(text)) if isinstance(text, str) else None

    def truncate(self, text: str) -> str:
        """Cut where the model starts a new "Problem:" (few-shot continuation)."""
        m = NEW_PROBLEM_RE.search(text) if isinstance(text, str) else None
        return text[:m.start()].rstrip() if m else text

    def same_answer(self, a: str, b: str) -> bool:
        """math-verify equivalence of two stated answers (majority voting groups `1/2` with `0.5`)."""
        from math_verify import parse, verify

        if a == b:
            return True
        try:
            return bool(verify(parse(f"${a}$"), parse(f"${b}$")))
        except Exception:
            return False

    def reward(self, text: str, problem: dict) -> float:
        """1.0 when the stated answer is mathematically equal to the gold one (math-verify); never raises."""
        from math_verify import parse, verify

        try:
            stated = self.extract_answer(text)
            if stated is None:
                return 0.0
            gold = parse(f"${problem['answer']}$")
            return float(verify(gold, parse(f"${stated}$")))
        except Exception:
            return 0.0
