"""Reversed addition for easy-to-hard self-improvement (Lee et al., ICML 2025; recipes/easy_to_hard.yaml).

    a = 123, b = 456      prompt: "321+654="      target: "9750"

Both operands and the sum are written least significant digit first, so each output digit depends
only on the digits at its own position and the carry: the format the paper uses to show length
generalization. The target is right-padded with 0 to max(len(a), len(b)) + 1 digits, so its length
is fixed by the operands' (this is what the length filter checks). Difficulty is the longer
operand's digit count.

Problems of any length come from `problems(length, count, seed, gold)`: with `gold=False` the rows
carry no answer at all (what the self-labelling stage gets). `gold(problem)` recomputes the answer
for reporting only; `task.corrupt_gold_above` deliberately corrupts it above a length, which is how
the tests prove that no gold label beyond the start length enters training.
"""
from __future__ import annotations

import random
from typing import Optional

from . import LengthTask, TaskDataError, register_task


def reverse_target(a: int, b: int) -> str:
    width = max(len(str(a)), len(str(b))) + 1
    return str(a + b)[::-1].ljust(width, "0")


def _operand(rng: random.Random, n: int) -> int:
    return rng.randint(10 ** (n - 1) if n > 1 else 0, 10**n - 1)


@register_task("reverse_addition")
class ReverseAddition(LengthTask):
    def __init__(self, cfg):
        self.cfg = cfg

    # ---- problems ----
    def _row(self, a: int, b: int, split: str, i: int, gold: bool) -> dict:
        p = {"id": f"{split}-{i}", "question": f"{str(a)[::-1]}+{str(b)[::-1]}",
             "difficulty": max(len(str(a)), len(str(b)))}
        if gold:
            p["answer"] = self.gold(p)
        return p

    def problems(self, length: int, count: int, seed: int, gold: bool, split: str = "gen") -> list[dict]:
        """`count` problems whose operands both have `length` digits (the paper's self-labelled
        rounds), drawn from `seed`; without gold the rows have no `answer` key."""
        rng = random.Random(f"{self.cfg.data_seed}-{split}-{length}-{seed}")
        return [self._row(_operand(rng, length), _operand(rng, length), f"{split}-d{length}", i, gold)
                for i in range(count)]

    def splits(self) -> dict[str, list[dict]]:
        """seed: the round-0 labelled data, each operand's length drawn from 1..start_length (the
        only gold labels training ever sees); val/test: start_length-digit problems, for reporting
        (the per-length windows are drawn by the evaluate_lengths stage)."""
        c = self.cfg
        if c.start_length < 1:
            raise TaskDataError(f"task.start_length must be >= 1 (got {c.start_length}); e.g. task.start_length=8.")
        rng = random.Random(c.data_seed)
        seed = []
        for i in range(c.seed_examples):
            la, lb = rng.randint(1, c.start_length), rng.randint(1, c.start_length)
            p = self._row(_operand(rng, la), _operand(rng, lb), "seed", i, gold=True)
            p["solution"] = p["answer"]
            seed.append(p)
        return {"seed": seed,
                "val": self.problems(c.start_length, c.val_size, 0, gold=True, split="val"),
                "test": self.problems(c.start_length, c.test_size, 0, gold=True, split="test")}

    def gold(self, problem: dict) -> str:
        """The right answer, computed from the question (reporting and held-out evaluation only)."""
        ra, _, rb = problem["question"].partition("+")
        answer = reverse_target(int(ra[::-1]), int(rb[::-1]))
        above = self.cfg.corrupt_gold_above
        if above is not None and problem["difficulty"] > above:  # tests: poison every gold label beyond it
            answer = "".join(str((int(d) + 1) % 10) for d in answer)
        return answer

    # ---- prompting and checking ----
    def prompt(self, problem: dict, hint: bool = False) -> str:
        return f"{problem['question']}="

    def extract_answer(self, text: str) -> Optional[str]:
        text = text.strip() if isinstance(text, str) else ""
        return text if text.isdigit() else None

    def truncate(self, text: str) -> str:
        return text.strip()

    def reward(self, text: str, problem: dict) -> float:
        """Exact match of the whole padded, reversed sum."""
        return float(self.extract_answer(text) is not None and text.strip() == str(problem.get("answer")))

    def difficulty_of(self, question: str) -> Optional[int]:
        a, _, b = question.partition("+")
        return max(len(a), len(b)) if a.isdigit() and b.isdigit() else None

    def seq_positions(self, length: int) -> int:
        """Positions a `length`-digit problem takes: BOS, two operands, '+', '=', the padded
        target (length + 1 digits) and EOS."""
        return 1 + (2 * length + 2) + (length + 1) + 1
