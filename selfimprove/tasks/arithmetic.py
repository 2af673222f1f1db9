"""Built-in task: multi-digit addition with a digit-by-digit scratchpad.

    prompt:      "Q: 478+356\nA:"                 hinted (STaR rationalization): "Q: 478+356 (834)\nA:"
    completion:  " 8+6=14,7+5+1=13,4+3+1=8\n#### 834"

Each scratchpad step adds one column (least significant first) plus the carry, so every step is
local and checkable; the answer line is what the reward reads. Difficulty is the number of digits
of the longer operand. All sets are drawn from `data_seed`, so they are identical across runs.
"""
from __future__ import annotations

import random
from typing import Optional

from . import JudgingTask, TaskDataError, register_task
from .columns import operands, worked_solution


def solution(a: int, b: int) -> str:
    """The worked seed solution of a+b (see columns.py)."""
    return worked_solution(a, b)


@register_task("arithmetic")
class Arithmetic(JudgingTask):
    def __init__(self, cfg):
        self.cfg = cfg

    def _problem(self, rng: random.Random, weights, split: str, i: int) -> dict:
        n = rng.choices(range(1, len(weights) + 1), weights=weights)[0]
        m = n if rng.random() < 0.7 else rng.randint(1, n)  # the other operand: mostly as long
        a = rng.randint(10 ** (n - 1) if n > 1 else 0, 10**n - 1)
        b = rng.randint(10 ** (m - 1) if m > 1 else 0, 10**m - 1)
        if rng.random() < 0.5:
            a, b = b, a
        return {"id": f"{split}-{i}", "question": f"{a}+{b}", "answer": str(a + b), "difficulty": n,
                "solution": solution(a, b)}

    def splits(self) -> dict[str, list[dict]]:
        c = self.cfg
        for split in ("seed", "train", "test"):
            w = list(getattr(c, f"{split}_weights"))
            if not w or min(w) < 0 or sum(w) <= 0:
                raise TaskDataError(f"task.{split}_weights must be non-negative shares per digit count with a positive "
                                 f"sum, e.g. [0.5, 0.5] for 1- and 2-digit problems (got {w}).")
        rng = random.Random(c.data_seed)
        seen: set[str] = set()
        out: dict[str, list[dict]] = {}
        plan = [("test", c.test_weights, c.test_size), ("val", c.test_weights, c.val_size),
                ("seed", c.seed_weights, c.seed_examples), ("train", c.train_weights, c.train_size)]
        for split, weights, size in plan:
            rows = []
            while len(rows) < size:
                p = self._problem(rng, list(weights), split, len(rows))
                if p["question"] in seen:  # no problem appears in two splits
                    continue
                seen.add(p["question"])
                if split != "seed":
                    p.pop("solution")  # only seed problems come with rationales
                rows.append(p)
            out[split] = rows
        return out

    def gold_solution(self, problem: dict) -> Optional[str]:
        """Every problem has one: the scratchpad is computed from the operands (the same text the
        seed examples carry), so the gold-SFT control can train on any training problem."""
        a, _, b = problem["question"].partition("+")
        return solution(int(a), int(b)) if a.isdigit() and b.isdigit() else problem.get("solution")

    def prompt(self, problem: dict, hint: bool = False) -> str:
        hinted = f" ({problem['answer']})" if hint else ""
        return f"Q: {problem['question']}{hinted}\nA:"

    # ---- Self-Rewarding (recipe=self_rewarding): the task supplies its judge's seed data ----
    def eft_examples(self, problems: list[dict], per_problem: int, seed: int) -> list[dict]:
        """EFT seed: candidate responses (gold and perturbed) with judgments from the gold answer."""
        from .arithmetic_judging import eft_examples

        return eft_examples(problems, per_problem, seed)

    def judge_pairs(self, problems: list[dict], seed: int) -> list[dict]:
        """Held-out (correct, incorrect) responses, for the judge's pairwise accuracy."""
        from .arithmetic_judging import judge_pairs

        return judge_pairs(problems, seed)

    def instruction_prompt(self, examples: list[dict]) -> str:
        from .arithmetic_judging import instruction_prompt

        return instruction_prompt([p["question"] for p in examples])

    def parse_instruction(self, text: str):
        """A new problem written by the model, or None if it is not one in the task's format."""
        from .arithmetic_judging import parse_instruction

        return parse_instruction(text, max_digits=len(self.cfg.train_weights))

    def difficulty_of(self, question: str) -> Optional[int]:
        a, _, b = question.partition("+")
        return max(len(a), len(b)) if a.isdigit() and b.isdigit() else None

    def oracle_correct(self, prompt: str, text: str) -> Optional[bool]:
        """Reporting only: whether `text` answers the problem in `prompt` (the sum is computable)."""
        import re

        m = re.search(r"Q: (\d+\+\d+)", prompt)
        return bool(m) and self.reward(text, {"answer": str(sum(operands(m[1])))}) >= 1
