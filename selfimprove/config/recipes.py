"""Recipe discovery (the shipped recipes/ folder and SELFIMPROVE_RECIPE_PATH) and Hydra's
ConfigStore: the open root, one placeholder per stage kind, the group schemas, each recipe as a
choice of the `recipe` group."""
from __future__ import annotations

import difflib
import os
from dataclasses import fields
from pathlib import Path

from omegaconf import OmegaConf

from ..paths import CONF_DIR, RECIPES_DIR
from ..stages import stage_kinds
from .schema import GROUP_SCHEMAS, SHARED_KEYS, RunConfig


def recipe_dirs() -> list[Path]:
    extra = [Path(p) for p in os.environ.get("SELFIMPROVE_RECIPE_PATH", "").split(os.pathsep) if p]
    return [RECIPES_DIR, *extra]


def available_recipes() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for d in recipe_dirs():
        for f in sorted(d.glob("*.yaml")):
            found.setdefault(f.stem, f)  # earlier folders win: shipped recipes cannot be shadowed
    return found


def register_configs() -> None:
    from hydra.core.config_store import ConfigStore


    cs = ConfigStore.instance()
    # The root is an open map: a recipe may add any stage section (`polish: {kind: sft}`). Its shared
    # sections stay typed, so `model.tiny.hiden_size=...` still fails while composing; stage sections
    # are typed by `typed_config` once the recipe's stage lists are known.
    root = OmegaConf.create({})
    for f in fields(RunConfig):
        root[f.name] = OmegaConf.structured(RunConfig)._get_node(f.name)
    # An open placeholder per kind, so that `evaluate.num_samples=16` can set a section the recipe
    # file leaves to its defaults; its keys are checked against the kind's schema afterwards.
    # The same for the sections of the setup recipes share (conf/seed_model/: `seed_sft.weight_decay=0.1`).
    shared_sections = [k for f in sorted((CONF_DIR / "seed_model").glob("*.yaml")) for k in OmegaConf.load(f)]
    for name in [*stage_kinds(), *shared_sections]:
        root[name] = OmegaConf.create({})
        OmegaConf.set_struct(root[name], False)
    cs.store(name="run_schema", node=root)
    for (group, name), schema in GROUP_SCHEMAS.items():
        cs.store(group=group, name=name, node=schema)
    for name, path in available_recipes().items():
        recipe = OmegaConf.load(path)
        for key in recipe:  # the recipe's stage sections stay open too: `train.max_epochs=2` sets a
            if key not in SHARED_KEYS and OmegaConf.is_dict(recipe._get_node(key)):  # key the file leaves out
                OmegaConf.set_struct(recipe[key], False)
        cs.store(group="recipe", name=name, node=recipe, package="_global_")


def recipe_problems(name: str) -> list[str]:
    """A recipe file's top-level keys are shared settings or sections its own stage lists name: a
    misspelled section (`trian:`) would otherwise be dropped with the unused ones, silently."""
    path = available_recipes().get(name)
    if path is None:
        return []
    recipe = OmegaConf.to_container(OmegaConf.load(path))
    lists = [s for key in ("setup", "stages") for s in recipe.get(key) or []]
    if not all(key in recipe for key in ("setup", "stages")):
        return [f"recipe {path} must list its stages: `setup: [...]` (run once) and `stages: [...]` (each "
                f"iteration), e.g. setup: [prepare, seed_sft, evaluate]."]
    extra = [k for k in recipe if k not in SHARED_KEYS and k not in lists and k != "defaults"]
    return [f"recipe {path} has a section '{k}' that neither `setup` nor `stages` names"
            + (f" (did you mean '{near[0]}'?)" if (near := difflib.get_close_matches(k, lists, n=1)) else "")
            + f"; its stages are {', '.join(dict.fromkeys(lists))}. Add '{k}' to a stage list or remove the section."
            for k in extra]
