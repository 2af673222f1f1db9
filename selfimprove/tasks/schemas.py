"""Each task's config schema (the `task=` group's choices; conf/task/<name>.yaml picks one)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional


@dataclass
class ArithmeticTaskConfig:
    """Difficulty is the digit count of the longer operand. Each split lists the share of its
    problems per digit count 1, 2, 3, ... : the seed examples are mostly easier than the held-out
    test problems, and the training problems (gold answers only) reach the test's difficulty."""

    name: str = "arithmetic"
    data_seed: int = 1234  # fixes the problem sets; independent of the run's `seed`
    seed_examples: int = 400  # worked examples (with rationales) for the seed stage
    # 80% of the seed examples have 1-3 digits; the held-out test has 4 (the tiny model never got
    # off 0% on 5 digits in our runs, so a 5-digit test only halves every number)
    seed_weights: List[float] = field(default_factory=lambda: [0.2, 0.25, 0.35, 0.12, 0.08])
    train_weights: List[float] = field(default_factory=lambda: [0.1, 0.15, 0.2, 0.25, 0.3])
    test_weights: List[float] = field(default_factory=lambda: [0.0, 0.0, 0.0, 1.0])
    train_size: int = 6000  # problems with gold answers only
    val_size: int = 100  # drawn like the test set
    test_size: int = 300


@dataclass
class ReverseAdditionTaskConfig:
    """Reversed addition (tasks/reverse_addition.py) for recipe=easy_to_hard. Round 0 trains on
    `seed_examples` gold-labelled problems with operand lengths 1..start_length; round r
    self-labels the next `lengths_per_round` lengths."""

    name: str = "reverse_addition"
    data_seed: int = 1234
    start_length: int = 8  # L0: the longest operand length with gold labels
    lengths_per_round: int = 1  # lengths added per round (the paper's standard schedule: 1)
    seed_examples: int = 20000
    val_size: int = 128  # start_length-digit problems (reporting)
    test_size: int = 128
    train_size: Optional[int] = None  # unused: training problems are drawn per round, at their length
    # Tests only: corrupt every gold answer (reporting, evaluation) above this length; training
    # data must come out identical, since no gold label beyond start_length may enter it. null: off.
    corrupt_gold_above: Optional[int] = None


@dataclass
class GSM8KTaskConfig:
    name: str = "gsm8k"
    # GSM8K-format JSONL files (one {"question", "answer"} object a line, the answer a worked
    # solution ending in "#### N"); leave both null to load `hf_dataset` instead.
    train_path: Optional[str] = None
    test_path: Optional[str] = None
    hf_dataset: Optional[str] = "openai/gsm8k"  # only used when both paths are null
    hf_config: str = "main"
    data_seed: int = 1234  # fixes exemplars, val and subsets; independent of the run's `seed`
    num_fewshot: int = 4  # exemplars drawn from the training file: the `seed` split, not in train/val
    fewshot: bool = True  # prefix every prompt with the exemplars' worked solutions
    val_size: int = 100  # carved from the training file
    train_size: Optional[int] = None  # seeded random subset of the rest; null = all
    test_size: Optional[int] = None  # seeded random subset of the test file; null = all
    # SCoRe's second turn (recipe=score task=gsm8k): "{attempt}" then the instruction that follows
    # the first attempt (with a chat template, a new user turn); the paper's instruction for MATH.
    # It never says whether the attempt was right. null: a one-turn task
    correction_template: Optional[str] = (
        "{attempt}\n\nThere might be an error in the solution above because of lack of understanding of the "
        "question. Please correct the error, if any, and rewrite the solution, ending with the line "
        "'#### <answer>'.\nA:")


@dataclass
class MathTaskConfig(GSM8KTaskConfig):
    """MATH-style JSONL (problem, solution with \\boxed{} and/or answer, level); see tasks/competition_math.py."""

    name: str = "math"
    hf_dataset: Optional[str] = None  # e.g. a MATH mirror with problem/solution columns
    hf_config: str = "default"


@dataclass
class PromptsTaskConfig:
    """Prompts without gold answers (Self-Rewarding on a real instruct model); see tasks/prompts.py."""

    name: str = "prompts"
    path: Optional[str] = None  # JSONL, one {"prompt": ...} a line
    seed_path: Optional[str] = None  # JSONL of IFT {"prompt","response"} and EFT {"kind":"eft",...,"judgment"} rows
    judge_pairs_path: Optional[str] = None  # JSONL of held-out {"prompt","chosen","rejected"}
    data_seed: int = 1234
    train_size: Optional[int] = None  # unused: every non-held-out prompt is a training prompt
    val_size: int = 0  # unused: val is the held-out test prompts
    test_size: int = 50  # prompts held out for evaluation (answered, never trained on)
    max_instruction_chars: int = 2000  # self-instruction: longer "prompts" are rejected
    seed_examples: Optional[int] = None  # unused: the seed file's rows are the seed (recipes may set it)


@dataclass
class ArithmeticCorrectionTaskConfig(ArithmeticTaskConfig):
    """Two-turn addition for SCoRe (tasks/arithmetic_correction.py): the seed data gives the base
    model a checkable blind spot and one correction demonstration per worked example; the shares
    below set how often first attempts are wrong, how often a wrong one is fixed, and how often a
    right one is broken."""

    name: str = "arithmetic_correction"
    # the second turn's prompt is the first turn's prompt followed by this template, whose leading
    # {attempt} stands for the first attempt; the instruction after it must not say whether that
    # attempt was right.
    correction_template: str = "{attempt}\nCheck each step and fix any error.\nA:"
    seed_examples: int = 600
    correction_demos: int = 100_000  # at most this many demonstrations (one per worked example)
    blind_spot_rate: float = 0.7  # a column summing to 10 is written as 11 (first attempts)
    demo_first_error_rate: float = 0.3  # random one-column slips in the other first attempts
    demo_fix_rate: float = 0.4
    demo_break_rate: float = 0.2
    # the test is 3-digit (where the base model is right about half the time) and so are most
    # of the RL problems; the worked examples stay at most 3 digits too
    seed_weights: List[float] = field(default_factory=lambda: [0.2, 0.3, 0.5])
    train_weights: List[float] = field(default_factory=lambda: [0.0, 0.2, 0.8])
    test_weights: List[float] = field(default_factory=lambda: [0.0, 0.0, 1.0])
