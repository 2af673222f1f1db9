"""Prompts without gold answers (`task=prompts`): what Self-Rewarding trains on with a real
instruction-following model.

    task.path        JSONL, one {"prompt": "..."} (or {"question": ...}) a line: the instructions
                     the policy answers (`train`); `test_size` of them are held out (`test`, `val`)
                     and only answered at evaluation (held-out accuracy is then absent: no gold).
    task.seed_path   optional JSONL seed data for the first model (M1):
                       IFT   {"prompt": ..., "response": ...}
                       EFT   {"kind": "eft", "prompt": ..., "response": ..., "judgment": "... Score: 4"}
                     EFT rows are rendered with the judge template, so the model is taught the same
                     judge prompt it is later asked.
    task.judge_pairs_path   optional JSONL of held-out {"prompt", "chosen", "rejected"} (e.g. human-
                     ranked answers) for the judge's pairwise accuracy.

Prompts are used verbatim (with model.chat_template=true they become a user turn).
"""
from __future__ import annotations

import json
import random
from pathlib import Path

from . import JudgingTask, TaskDataError, register_task


def _read(path: str, what: str) -> list[dict]:
    p = Path(path).expanduser()
    if not p.is_file():
        raise TaskDataError(f"{what} '{path}' does not exist. Point it at a JSONL file, one JSON object a line.")
    rows = []
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise TaskDataError(f"{what} {p}, line {n}: not JSON ({exc}).") from None
        if not isinstance(row, dict):
            raise TaskDataError(f"{what} {p}, line {n}: expected a JSON object, got {type(row).__name__}.")
        rows.append(row)
    return rows


@register_task("prompts")
class Prompts(JudgingTask):
    answer_marker = "\u0000"  # no answer line: completions are never cut

    def __init__(self, cfg):
        self.cfg = cfg

    def splits(self) -> dict[str, list[dict]]:
        c = self.cfg
        if not c.path:
            raise TaskDataError("task=prompts needs task.path=<JSONL of {\"prompt\": ...} lines>.")
        prompts = []
        for n, row in enumerate(_read(c.path, "task.path"), 1):
            text = row.get("prompt", row.get("question"))
            if not isinstance(text, str) or not text.strip():
                raise TaskDataError(f"task.path {c.path}, line {n}: needs a non-empty \"prompt\" string.")
            prompts.append({"id": f"prompt-{n}", "question": text, "difficulty": None})
        rng = random.Random(c.data_seed)
        order = list(range(len(prompts)))
        rng.shuffle(order)
        held = set(order[:c.test_size])
        if len(held) >= len(prompts):
            raise TaskDataError(f"task.test_size={c.test_size} leaves no training prompt of the {len(prompts)} in "
                                f"{c.path}; lower it.")
        test = [prompts[i] for i in sorted(held)]
        seed = []
        for n, row in enumerate(_read(c.seed_path, "task.seed_path") if c.seed_path else [], 1):
            if row.get("kind", "ift") == "ift":
                seed.append({"id": f"seed-{n}", "question": row["prompt"], "solution": row["response"],
                             "difficulty": None})
        return {"train": [p for i, p in enumerate(prompts) if i not in held], "test": test, "val": test,
                "seed": seed}

    def prompt(self, problem: dict, hint: bool = False) -> str:
        return problem["question"]

    def extract_answer(self, text: str):
        return None

    def reward(self, text: str, problem: dict) -> float:
        return 0.0

    # ---- Self-Rewarding ----
    def eft_examples(self, problems: list[dict], per_problem: int, seed: int) -> list[dict]:
        rows = _read(self.cfg.seed_path, "task.seed_path") if self.cfg.seed_path else []
        return [{"problem_id": f"eft-{n}", "question": r["prompt"], "response": r["response"],
                 "judgment": r["judgment"], "score": r.get("score")}
                for n, r in enumerate(rows, 1) if r.get("kind") == "eft"]

    def judge_pairs(self, problems: list[dict], seed: int) -> list[dict]:
        if not self.cfg.judge_pairs_path:
            return []
        return [{"problem_id": f"pair-{n}", "question": r["prompt"], "good": r["chosen"], "bad": r["rejected"]}
                for n, r in enumerate(_read(self.cfg.judge_pairs_path, "task.judge_pairs_path"), 1)]

    def instruction_prompt(self, examples: list[dict]) -> str:
        shots = "".join(f"Instruction: {p['question']}\n\n" for p in examples)
        return f"Write one new instruction in the style of these.\n\n{shots}Instruction:"

    def parse_instruction(self, text: str):
        line = text.strip().split("\n\n", 1)[0].strip() if isinstance(text, str) else ""
        return line if 0 < len(line) <= self.cfg.max_instruction_chars else None
