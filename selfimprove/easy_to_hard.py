"""Easy-to-hard self-improvement (Lee et al., ICML 2025) as pure functions over records: the length
schedule, the label filters, the training mixture and the per-length monitors. The stages
(self_label, mix, evaluate_lengths) only read and write files around these."""
from __future__ import annotations

import json
import random
from collections import Counter, defaultdict
from pathlib import Path
from typing import Optional


# ---- schedule: the standard one (`lengths_per_round` new lengths a round) and the fast one ----
def trained_length(start_length: int, per_round: int, iteration: int) -> int:
    """L after round `iteration` (0 = the supervised round) on the standard schedule: the longest
    length trained on. A round's `schedule` artifact records it for any schedule."""
    return start_length + max(0, iteration) * per_round


def scheduled_length(schedule_path, task_cfg, iteration: int) -> int:
    """L after round `iteration`: what the latest self_label stage's `schedule` artifact recorded
    (any schedule), else the standard schedule's (round 0, and runs without self-labels)."""
    if schedule_path:
        return int(json.loads(Path(schedule_path).read_text())["trained_length"])
    return trained_length(task_cfg.start_length, task_cfg.lengths_per_round, iteration)


def position_limit(model_cfg) -> Optional[int]:
    """The embedded model's positions (a pretrained model's are not ours to cap: None)."""
    return model_cfg.tiny.max_position_embeddings if model_cfg.name_or_path is None else None


def accelerated_lengths(top: int, accuracy_at, threshold: float, max_lengths: int, fits) -> list[int]:
    """The paper's fast schedule: always L+1, and while the model already solves the last length
    taken at >= `threshold`, the next one too if it also solves that; at most `max_lengths`
    lengths, none that `fits(n)` rejects (the model's positions). `accuracy_at(n)` measures a
    length with gold answers (gold picks the lengths, as in the paper's code; labels stay the
    model's); each length is measured once."""
    measured: dict[int, float] = {}

    def solved(n: int) -> bool:
        if n not in measured:
            measured[n] = accuracy_at(n)
        return measured[n] >= threshold

    lengths = [top + 1]
    while len(lengths) < max_lengths and fits(lengths[-1] + 1) and solved(lengths[-1]) and solved(lengths[-1] + 1):
        lengths.append(lengths[-1] + 1)
    return lengths


def positions_of(n: int) -> int:
    """Positions a reversed-addition problem with n-digit operands takes: BOS, the operands, '+',
    '=', the padded target (n + 1 digits), EOS."""
    return 1 + (2 * n + 2) + (n + 1) + 1


# ---- filters: each returns, per label, whether it survives ----
def length_filter(labels: list[str], lengths: list[int], t: int) -> list[bool]:
    """The paper's length filter: drop a label at least `t` tokens shorter than the full label
    length of its operand length in this round (a missing trailing digit is the typical error past
    the trained length), and drop a label longer than that (it ran on). t = 0 keeps everything but
    empty labels.

    The paper measures against the longest prediction of a batch whose generation is capped at
    the answer's width. Labelling here may write one token more, to see labels that run on, so
    the full length is the most common one (ties: the longer): measured against the longest, one
    run-on label dropped all the others (round 1 of the default run kept 4 of its 2,000 labels,
    although 88.7% of the 2,000 were right)."""
    counts: dict[int, Counter] = defaultdict(Counter)
    for label, n in zip(labels, lengths):
        if label:
            counts[n][len(label)] += 1
    full = {n: max(c, key=lambda k: (c[k], k)) for n, c in counts.items()}
    return [bool(label) and (t <= 0 or 0 <= full[n] - len(label) < t) for label, n in zip(labels, lengths)]


def agreement(label: str, votes: list[str]) -> float:
    """Share of `votes` identical to `label` (1.0 when there are no votes)."""
    return sum(v == label for v in votes) / len(votes) if votes else 1.0


# ---- the training mixture ----
def mixture(original: list[dict], older: dict[int, list[dict]], newest: list[dict], rows: int,
            newest_share: float, original_weight: float, seed: int) -> list[dict]:
    """`rows` rows drawn with replacement: the newest round with probability `newest_share`, the
    rest shared between the original data (weight `original_weight`) and each older round (weight
    1). Without a newest round (the control), everything comes from the original data and the
    older rounds."""
    rng = random.Random(seed)
    groups = [(original_weight, original)] + [(1.0, older[r]) for r in sorted(older) if older[r]]
    share = newest_share if newest else 0.0
    n_new = round(rows * share)
    out = [rng.choice(newest) for _ in range(n_new)]
    weights = [w for w, _ in groups]
    for g in rng.choices(range(len(groups)), weights=weights, k=rows - n_new):
        out.append(rng.choice(groups[g][1]))
    rng.shuffle(out)
    return out


# ---- monitors ----
def longest_at(acc_by_length: dict[int, float], target: float) -> Optional[int]:
    """The longest length L such that every evaluated length up to L reaches `target` (None if
    the shortest one already misses it)."""
    best = None
    for n in sorted(acc_by_length):
        if acc_by_length[n] < target:
            break
        best = n
    return best




def require_length_task(task, stage: str) -> None:
    """The easy-to-hard stages draw problems of any length: refuse any other task with the fix."""
    from .tasks import LengthTask

    if not isinstance(task, LengthTask):
        from .errors import StageError

        raise StageError(f"{stage} needs a task that generates problems of any length (task=reverse_addition); "
                         f"task={task.cfg.name} does not.")


def schedule_problems(cfg, names: list[str]) -> list[str]:
    """Startup checks of a reverse_addition run: a start length >= 1, and a schedule whose longest
    problem (last round, plus the evaluation window) fits the model's positions and the rounds'
    training `max_length` (config/validate.py calls this for task=reverse_addition)."""
    from omegaconf import OmegaConf

    from .errors import Problems

    p = Problems()
    t = cfg.task
    p.need(t.start_length >= 1, f"task.start_length must be >= 1 (got {t.start_length}): round 0 trains on operand "
                                f"lengths 1..start_length, e.g. task.start_length=8.")
    p.need(t.lengths_per_round >= 1, f"task.lengths_per_round must be >= 1 (got {t.lengths_per_round}).")
    if t.start_length < 1 or t.lengths_per_round < 1:
        return p
    trained = longest = t.start_length + cfg.iterations * t.lengths_per_round
    ev = [cfg[n] for n in names if n in cfg and OmegaConf.is_dict(cfg[n]) and cfg[n].get("kind") == "evaluate_lengths"]
    for e in ev:
        p.need(len(e.window) == 2 and e.window[0] <= e.window[1],
               f"evaluate_lengths.window must be [first, last] relative to the trained length, e.g. [-3, 5] (got {list(e.window)}).")
        if len(e.window) == 2:
            longest = max([longest, longest + e.window[1], *e.lengths])
    positions = positions_of(longest)
    if cfg.model.name_or_path is None:
        limit = cfg.model.tiny.max_position_embeddings
        p.need(positions <= limit,
               f"the schedule reaches {longest}-digit problems (task.start_length={t.start_length} + iterations="
               f"{cfg.iterations} x task.lengths_per_round={t.lengths_per_round}, plus the evaluation window), which "
               f"take {positions} positions, but the model has model.tiny.max_position_embeddings={limit}. Raise it "
               f"with model.tiny.max_position_embeddings={positions}, or lower iterations.")
    for name in dict.fromkeys(cfg.stages):  # the rounds' train stages (setup trains on 1..start_length only)
        s = cfg[name] if name in cfg and OmegaConf.is_dict(cfg[name]) else {}
        if s.get("kind") == "sft" and s.get("enabled", True):
            p.need(s.max_length is None or positions_of(trained) <= s.max_length,
                   f"the schedule trains on {trained}-digit problems ({positions_of(trained)} tokens) but {name}.max_length="
                   f"{s.max_length} would cut them off; set {name}.max_length={positions_of(trained)} or more, or lower "
                   f"iterations.")
    return p
