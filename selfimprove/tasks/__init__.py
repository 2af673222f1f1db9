"""Tasks: where problems come from, how they are prompted, and how an answer is checked."""
from __future__ import annotations

import re
from typing import Optional

from ..registry import Registry

TASKS: Registry = Registry("task")


class TaskDataError(ValueError):
    """A task's data cannot be read (missing file, malformed line, unreachable dataset): the
    message names the file or option and what to set instead."""
register_task = TASKS.register


class Task:
    """A problem is a dict with at least `id`, `question`, `answer` (gold final answer) and
    `difficulty`; seed problems also carry `solution` (a worked rationale ending in the answer)."""

    answer_marker = "####"

    def splits(self) -> dict[str, list[dict]]:
        raise NotImplementedError

    def prompt(self, problem: dict, hint: bool = False) -> str:
        raise NotImplementedError

    def extra_seed_rows(self, problems: list[dict]) -> list[dict]:
        """More prompt/completion rows for the seed stage, built from the worked seed problems
        (e.g. self-correction demonstrations); none by default."""
        return []

    def difficulty_of(self, question: str) -> Optional[int]:
        """The difficulty (1, 2, ...) of a question the model wrote, for self-instruction quotas;
        None where the task cannot tell."""
        return None

    def extract_answer(self, text: str) -> Optional[str]:
        """The final answer written after the marker, normalised; None when there is none."""
        if not isinstance(text, str):
            return None
        idx = text.find(self.answer_marker)
        if idx < 0:
            return None
        m = re.match(r"\s*(-?[\d,]*\d)", text[idx + len(self.answer_marker):])
        return m.group(1).replace(",", "").lstrip("0") or "0" if m else None

    def truncate(self, text: str) -> str:
        """Cut a completion after its answer line (a stop sequence): text the model rambles on with
        after answering is neither scored nor trained on."""
        idx = text.find(self.answer_marker)
        if idx < 0:
            return text
        end = text.find("\n", idx)
        return text if end < 0 else text[:end]

    def reward(self, text: str, problem: dict) -> float:
        """1.0 when the final answer matches the gold answer, else 0.0; never raises."""
        try:
            return float(self.extract_answer(text) == str(problem["answer"]))
        except Exception:
            return 0.0


def build_task(cfg) -> Task:
    # registration happens on import
    from . import arithmetic, arithmetic_correction, competition_math, gsm8k, prompts, reverse_addition  # noqa: F401

    return TASKS.get_or_explain(cfg.name)(cfg)
