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

    def without_exemplars(self, prompt: str) -> str:
        """A prompt of this task with its few-shot exemplars removed (training rows that leave them
        out); unchanged for a task without exemplars."""
        return prompt

    def extra_seed_rows(self, problems: list[dict]) -> list[dict]:
        """More prompt/completion rows for the seed stage, built from the worked seed problems
        (e.g. self-correction demonstrations); none by default."""
        return []

    def gold_solution(self, problem: dict) -> Optional[str]:
        """A gold worked solution (rationale + answer line) of any problem, for the gold-SFT control;
        None where the task has none for it (by default only seed problems carry one)."""
        return problem.get("solution")

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

    def same_answer(self, a: str, b: str) -> bool:
        """Whether two extracted answers are the same answer (majority voting groups by this);
        answers are canonical strings here, so equal strings. Tasks with symbolic answers override it."""
        return a == b

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


class JudgingTask(Task):
    """A task Self-Rewarding can run on: it supplies the judge's seed data and lets the model write
    new prompts in its format. The judge stages require this type; other tasks are refused at
    startup with the tasks that qualify."""

    def eft_examples(self, problems: list[dict], per_problem: int, seed: int) -> list[dict]:
        """EFT seed rows: a judge prompt's candidate response with a judgment ending in the score."""
        raise NotImplementedError

    def judge_pairs(self, problems: list[dict], seed: int) -> list[dict]:
        """Held-out {"prompt", "chosen", "rejected"} pairs for the judge's pairwise accuracy."""
        raise NotImplementedError

    def instruction_prompt(self, examples: list[dict]) -> str:
        """A few-shot prompt from which the model writes a new problem."""
        raise NotImplementedError

    def parse_instruction(self, text: str) -> Optional[str]:
        """The new problem the model wrote, or None if it is not one in this task's format."""
        raise NotImplementedError

    def oracle_correct(self, prompt: str, text: str) -> Optional[bool]:
        """Reporting only: whether `text` answers `prompt`, for tasks that can tell without stored
        gold (the built-in addition can); None where the task cannot."""
        return None


class LengthTask(Task):
    """A task that draws problems of any length, with or without gold (easy-to-hard)."""

    def problems(self, length: int, count: int, seed: int, gold: bool, split: str = "gen") -> list[dict]:
        raise NotImplementedError


CORRECTION_PLACEHOLDER = "{attempt}"


class CorrectionTask(Task):
    """A two-turn task for SCoRe: the model answers, a fixed instruction follows its answer, and it
    answers again. `cfg.correction_template` is "{attempt}" followed by the instruction; a task
    whose template is null has no second turn."""

    @property
    def instruction(self) -> str:
        """What follows the first attempt: the template after its leading {attempt} placeholder."""
        return self.cfg.correction_template[len(CORRECTION_PLACEHOLDER):]

    def turn2_prompt(self, problem: dict, first_attempt: str) -> str:
        """The second turn's prompt as plain text: the first turn, the first attempt, the instruction."""
        return self.prompt(problem) + first_attempt + self.instruction

    def turn2(self, problem: dict, first_attempt: str, chat: bool):
        """The second turn as a sampler takes it: plain text, or with `chat` a conversation (the
        user's question, the first attempt as the assistant's turn, the instruction as a new user
        turn) that the model's chat template renders. There the attempt is stripped, because some
        templates trim a turn's content (Llama 3's): stripped, every template holds it verbatim."""
        if not chat:
            return self.turn2_prompt(problem, first_attempt)
        return [{"role": "user", "content": self.prompt(problem)},
                {"role": "assistant", "content": first_attempt.strip()},
                {"role": "user", "content": self.instruction.strip()}]


def has_second_turn(task_cfg) -> bool:
    return bool(task_cfg.get("correction_template"))


def second_turn_missing(stage: str, cfg) -> str:
    return (f"stage '{stage}' needs a two-turn task with a correction instruction; task={cfg.task.name} has none. "
            "Use task=arithmetic_correction, or give task=gsm8k one: task.correction_template='{attempt}\\n\\n"
            "There might be an error in the solution above. Correct it, if any, and rewrite the solution.'")


def build_task(cfg) -> Task:
    # registration happens on import
    from . import arithmetic, arithmetic_correction, competition_math, gsm8k, prompts, reverse_addition  # noqa: F401

    return TASKS.get_or_explain(cfg.name)(cfg)
