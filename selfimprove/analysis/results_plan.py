"""What scripts/results.py runs for a results page: which recipes, how many seeds, and the runs,
seed models (or the prompted model's evaluation) first so that every recipe reuses them.

Two settings. `tiny` (docs/results.md): the embedded default, every recipe and both controls,
as `selfimprove run -m` sweeps through the local parallel launcher. `smollm2`
(docs/results-smollm2.md): SmolLM2-135M-Instruct on sums, where each recipe needs budgets of its
own (a Hydra sweep gives every job the same overrides), so each (recipe, seed) is one
`selfimprove run`, `jobs` at a time."""
from __future__ import annotations

import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

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


# ----------------------------------------------------------------------------- the SmolLM2 page
@dataclass(frozen=True)
class Tuned:
    """One setting of one recipe chosen on the validation split before the page's runs: a run per
    candidate (seed 0, evaluated on validation only: `evaluate.split=val`), the highest accuracy
    wins, the first listed on a tie. The page's runs of that recipe then use the winner."""
    recipe: str
    key: str
    candidates: tuple[str, ...]

    def run_name(self, sweep: str, value: str) -> str:
        return f"{sweep}-tune/{self.recipe}-{self.key.rsplit('.', 1)[-1]}-{value}"


@dataclass(frozen=True)
class Setting:
    """A results page on a real model: the recipes it runs, the overrides every run gets (with
    `{model}` and `{data}`: the model folder and the task's data folder, known only at run time)
    and those of one recipe (its budgets)."""
    name: str
    page: str
    title: str
    about: str  # the page's paragraph on the model, the task and how the budgets were set
    recipes: tuple[str, ...]
    common: tuple[str, ...]
    per_recipe: dict = field(default_factory=dict)
    tuned: Optional[Tuned] = None
    one_at_a_time: tuple[str, ...] = ()  # recipes whose runs need so much memory that two must not overlap

    def overrides(self, recipe: str, model: str, data: str) -> list[str]:
        return [o.format(model=model, data=data) for o in self.common + self.per_recipe.get(recipe, ())]


# STaR's fine-tune in the docs' SmolLM2 command, shared by every SFT recipe on the page; every SFT
# recipe trains on the bare question (no exemplars), as STaR's code does: on a CPU the 4-shot
# prompt would make each training row ~4x longer
_SFT = ("train.steps=50", "train.batch_size=8", "train.save_steps=25", "filter.fewshot_exemplars=false")
GRPO_STEPS = 10  # ~1.6x STaR's FLOPs on the page: each step trains on 16 four-shot prompts
_SAMPLED = ("generate.num_problems=200", "generate.k=4", "generate.max_new_tokens=48")
SMOLLM2 = Setting(
    name="smollm2",
    page="docs/results-smollm2.md",
    title="Results on a real model: SmolLM2-135M-Instruct on 2-digit sums",
    about=("The model is SmolLM2-135M-Instruct (`selfimprove models fetch-smollm2`), prompted 4-shot in its chat "
           "template; it has no seed model, so every recipe starts from the same prompted model and iteration 0 "
           "is the same for every seed. The task is sums of two 2-digit numbers in GSM8K's format "
           "(`scripts/make_sums_gsm8k.py --digits 2 --terms 2`: 400 training, 100 validation and 300 test "
           "problems), chosen on the validation split as the one the prompted model gets right 10-40% of the "
           "time (docs/measurements.md). One iteration per recipe, sized for a 2-core CPU: STaR samples the 400 "
           "training problems greedily (rationalizing the misses), ReST-EM and self-consistency 4 samples at "
           "T=0.7 for 200 of them, gold SFT takes STaR's problems with their gold worked solutions, and each "
           "fine-tunes the prompted model for 50 steps of batch 8 (SFT at the preset's 2e-5, on the bare "
           "question); `train_longer` spends the same 50 steps on the few-shot exemplars (the only data the "
           f"prompted model had); GRPO takes {GRPO_STEPS} steps of 4 problems x 4 completions at T=0.7, "
           "at the learning rate chosen on validation (below): TRL's default 1e-6 was sized for larger models. "
           "Seeds vary sampling and data order only."),
    recipes=("star", "rest_em", "self_consistency", "gold_sft", "train_longer", "grpo"),
    common=("model=smollm2-135m-instruct", "model.name_or_path={model}", "task=gsm8k",
            "task.train_path={data}/train.jsonl", "task.test_path={data}/test.jsonl", "task.val_size=100",
            "task.train_size=400", "task.test_size=300", "iterations=1", "evaluate.max_new_tokens=48",
            "evaluate.num_samples=0", "backend.batch_size=16"),
    per_recipe={
        "star": _SFT + ("generate.num_problems=400", "generate.max_new_tokens=48", "rationalize.max_new_tokens=48"),
        "rest_em": _SFT + _SAMPLED + ("train.val_max_new_tokens=48",),
        "self_consistency": _SFT + _SAMPLED,
        "gold_sft": _SFT + ("generate.num_problems=400",),
        "train_longer": _SFT[:3],
        "grpo": (f"grpo.steps={GRPO_STEPS}", "grpo.batch_size=16", "grpo.num_generations=4", "grpo.max_new_tokens=48",
                 "grpo.temperature=0.7", f"grpo.save_steps={GRPO_STEPS}"),
    },
    tuned=Tuned("grpo", "grpo.learning_rate", ("1e-6", "1e-5", "5e-5")),
    # a GRPO step on 16 four-shot completions peaks at ~12 GB on a CPU: two at once ran out of 24 GiB
    one_at_a_time=("grpo",),
)
SETTINGS = {"smollm2": SMOLLM2}


def _base(root: Path, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "selfimprove.cli", "run", "threads=1", "tracking.quiet=true", f"output_root={root}",
            *extra]


def setup_runs(setting: Setting, seeds: int, root: Path, sweep: str, model: str, data: str,
               extra: list[str]) -> list[list[str]]:
    """The prompted model's evaluation for each seed: STaR's setup, which every recipe of that seed
    then reuses through the stage cache (all runs share one output root)."""
    return [_base(root, extra) + [f"run_name={sweep}-setup/seed{s}", "recipe=star", f"seed={s}",
                                  *(o for o in setting.overrides("star", model, data) if not o.startswith("iterations=")),
                                  "iterations=0"] for s in range(seeds)]


def tune_runs(setting: Setting, root: Path, sweep: str, model: str, data: str, extra: list[str]) -> list[list[str]]:
    """One run per candidate of the tuned setting, seed 0, evaluated on the validation split only."""
    t = setting.tuned
    return [] if t is None else [
        _base(root, extra) + [f"run_name={t.run_name(sweep, v)}", f"recipe={t.recipe}", "seed=0",
                              *setting.overrides(t.recipe, model, data), f"{t.key}={v}", "evaluate.split=val",
                              "evaluate.val_split=null"] for v in t.candidates]


def choice(setting: Setting, root: Path, sweep: str) -> tuple[Optional[str], list[tuple[str, Optional[float]]]]:
    """The tuned setting's winner (None before its runs finished) and each candidate's validation
    accuracy at its last iteration (None: the run has not finished)."""
    from .runs import find_runs, split_unfinished

    t = setting.tuned
    if t is None:
        return None, []
    table = []
    for v in t.candidates:
        folder = root / t.run_name(sweep, v)
        done, _ = split_unfinished(find_runs([str(folder)]) if folder.is_dir() else [])
        evals = done[0].evaluations() if done else []
        table.append((v, evals[-1].get("accuracy") if evals else None))
    if any(acc is None for _, acc in table):
        return None, table
    return max(table, key=lambda va: va[1])[0], table  # max keeps the first of equals


def page_runs(setting: Setting, recipes: list[str], seeds: int, root: Path, sweep: str, model: str, data: str,
              extra: list[str], chosen: Optional[str]) -> list[list[str]]:
    """Every (recipe, seed), recipe by recipe, so that a call cut short leaves whole recipes over all
    seeds; the tuned recipe with its chosen value, left out while there is none (its runs have not
    finished, or failed)."""
    t = setting.tuned
    return [_base(root, extra) + [f"run_name={sweep}/{r}-seed{s}", f"recipe={r}", f"seed={s}",
                                  *setting.overrides(r, model, data),
                                  *([f"{t.key}={chosen}"] if t is not None and r == t.recipe else [])]
            for r in recipes if t is None or r != t.recipe or chosen is not None for s in range(seeds)]


def run_plan(setup: list, tuning: list, rest: list, tuned: Callable[[], list], heavy: Callable[[list], bool],
             jobs: int, run: Callable[[list], Optional[str]]) -> list[str]:
    """Run a real model's page `jobs` at a time: the setup runs first (every later run reuses them);
    then the tuning runs beside the runs that do not wait for their choice (`rest`); `tuned()`'s
    runs once every tuning run has ended. At most one `heavy` run at once, and it goes first
    whenever none is running. `run(cmd)` runs one and returns None, or the command if it failed;
    returns the failed ones (the others still count)."""
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        failed = [c for c in pool.map(run, setup) if c]
    queues = {True: [c for c in tuning + rest if heavy(c)], False: [c for c in tuning + rest if not heavy(c)]}
    state = {"heavy_running": False, "tuning_left": len(tuning)}
    cond = threading.Condition()

    def take() -> Optional[list]:
        with cond:
            while True:
                if queues[True] and not state["heavy_running"]:
                    state["heavy_running"] = True
                    return queues[True].pop(0)
                if queues[False]:
                    return queues[False].pop(0)
                if not queues[True] and not state["heavy_running"] and not state["tuning_left"]:
                    return None
                cond.wait()

    def worker() -> None:
        while (cmd := take()) is not None:
            result = run(cmd)
            with cond:
                if result:
                    failed.append(result)
                if heavy(cmd):
                    state["heavy_running"] = False
                if any(cmd is c for c in tuning):
                    state["tuning_left"] -= 1
                    if not state["tuning_left"]:  # every candidate ran: the choice is made
                        for c in tuned():
                            queues[heavy(c)].append(c)
                cond.notify_all()

    if not tuning:
        for c in tuned():
            queues[heavy(c)].append(c)
    threads = [threading.Thread(target=worker) for _ in range(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return failed
