"""What scripts/results.py runs for the results page: which recipes (every recipe and both
controls, but not those with a page of their own), how many seeds, and the `selfimprove run -m`
sweeps, seed models first so that every recipe with the same setup reuses them."""
from __future__ import annotations

import sys
from pathlib import Path

SEEDS = 5  # seeds per recipe by default: 3 left intervals too wide to tell most recipes apart
SETUP_RECIPE = "star"  # its setup (prepare, seed_sft, evaluate) is shared by most recipes
# recipes of another kind, with a page of their own, left out unless --recipes names them:
# easy_to_hard measures length generalization on reversed addition (scripts/e2h_summary.py)
OWN_PAGE = ("easy_to_hard",)


def recipes_available() -> list[str]:
    from ..config import available_recipes

    return sorted(available_recipes())


def default_recipes(known: list[str]) -> list[str]:
    """Every recipe and both controls, but not those with a page of their own."""
    return [r for r in known if r not in OWN_PAGE]


def commands(recipes: list[str], seeds: int, jobs: int, root: Path, sweep: str, extra: list[str]) -> list[list[str]]:
    """`selfimprove run -m` invocations: the shared seed models first, then every (recipe, seed)
    in groups of at most `jobs` runs of one seed (a Hydra sweep is a product of value lists).
    Group by group, every seed of a group before the next group: a call cut short (the full page
    takes hours) leaves whole recipes over all seeds, which a `--no-run` page can already show."""
    base = [sys.executable, "-m", "selfimprove.cli", "run", "-m", "hydra/launcher=local_parallel", "threads=1",
            "tracking.quiet=true", f"output_root={root}", *extra]
    # the local launcher starts every job of a sweep at once: at most `jobs` seeds per setup sweep
    cmds = [base + [f"sweep_name={sweep}-setup", f"recipe={SETUP_RECIPE}", "iterations=0",
                    "seed=" + ",".join(str(s) for s in range(first, min(first + jobs, seeds)))]
            for first in range(0, seeds, jobs)]
    for i in range(0, len(recipes), jobs):
        for seed in range(seeds):
            cmds.append(base + [f"sweep_name={sweep}", f"recipe={','.join(recipes[i:i + jobs])}", f"seed={seed}"])
    return cmds
