"""`typed_config`: the composed config as a run reads it, each stage section typed by its kind."""
from __future__ import annotations

import re
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf

from ..errors import ConfigError
from ..paths import CONF_DIR
from ..stages import stage_kinds
from .explain import explain_config_error
from .recipes import available_recipes, recipe_problems
from .schema import SHARED_KEYS, RunConfig


# A model preset's settings for every stage section of a kind (conf/finetune/pretrained.yaml):
# `by_kind: {sft: {learning_rate: 1e-5, ...}, dpo: {...}}`. Read here, not part of a run's config.
BY_KIND = "by_kind"


def typed_config(raw: Any, recipe: Optional[str] = None, later: Optional[dict[str, list[str]]] = None) -> DictConfig:
    """The composed config as a run reads it: the shared keys checked against RunConfig, and one
    section per stage the lists name, checked against its kind's dataclass, whose defaults fill in
    what the recipe leaves out. A section's kind is its `kind` key, or its name when that is a
    kind. Sections no list names are dropped: profiles size every section any recipe may have
    (m1_sft, dpo, grpo...), and a run holds only its own.

    A model preset's `by_kind` settings apply to every section of their kind, whatever its name
    (a user's `polish: {kind: sft}` as much as `train`): over the recipe's values, under the
    profile's and the command line's. Hydra has already merged those two into `raw`; `later`
    (`later_keys`) names the keys they set, section -> dotted keys, so that their values win."""
    from omegaconf.errors import OmegaConfBaseException


    problems = recipe_problems(recipe) if recipe else []
    for key in ("setup", "stages"):
        if key not in raw or OmegaConf.is_missing(raw, key):
            problems.append(f"`{key}` is not set: a recipe lists its stages in `setup` (run once) and `stages` "
                            f"(each iteration), e.g. setup: [prepare, seed_sft, evaluate].")
    if problems:
        raise ConfigError("Invalid configuration:\n  - " + "\n  - ".join(problems))
    try:
        shared = OmegaConf.merge(OmegaConf.structured(RunConfig), OmegaConf.masked_copy(raw, [k for k in SHARED_KEYS if k in raw]))
    except OmegaConfBaseException as exc:
        raise ConfigError(explain_config_error(exc) or str(exc)) from None
    out = OmegaConf.create({})
    for key in SHARED_KEYS:
        out[key] = shared._get_node(key)
    kinds = stage_kinds()
    todo = list(dict.fromkeys([*shared.setup, *shared.stages]))
    while todo:
        name = todo.pop(0)
        if name in out:
            continue
        section = raw._get_node(name) if name in raw else OmegaConf.create({})
        if not OmegaConf.is_dict(section):
            raise ConfigError(f"stage '{name}' must be a config section (e.g. {name}: {{kind: sft}}), not "
                              f"{OmegaConf.to_container(raw, resolve=False)[name]!r}.")
        kind = section.get("kind", name if name in kinds else None)
        if kind not in kinds:
            known = ", ".join(sorted(kinds))
            raise ConfigError(
                f"stage '{name}' in the stage lists has no kind: add a section `{name}: {{kind: ...}}` to the recipe "
                f"(or {name}.kind=... on the command line) with one of: {known}." if kind is None else
                f"stage '{name}' has kind '{kind}', which is not a stage kind. Available: {known}.")
        preset = raw.get(BY_KIND, {}).get(kind) if OmegaConf.is_dict(raw.get(BY_KIND)) else None
        try:
            out[name] = OmegaConf.merge(OmegaConf.structured(kinds[kind].schema), section, {"kind": kind})
            if preset is not None:
                kept = {k: OmegaConf.select(section, k, default=None) for k in (later or {}).get(name, [])
                        if OmegaConf.select(section, k, default="<unset>") != "<unset>"}
                out[name] = OmegaConf.merge(out[name], preset)
                for key, value in kept.items():
                    OmegaConf.update(out[name], key, value, merge=False)
        except OmegaConfBaseException as exc:
            raise ConfigError(_in_recipe(explain_config_error(exc, section=name) or str(exc), name, recipe)) from None
        # a section another one reads (judge_quality's `${judge.template}`) comes along, unrun
        todo += [ref for ref in re.findall(r"\$\{(\w+)\.", str(OmegaConf.to_container(out[name])))
                 if ref in raw and ref not in SHARED_KEYS]
    OmegaConf.set_struct(out, True)
    return out


def later_keys(choices: dict, overrides: list[str]) -> dict[str, list[str]]:
    """The keys of each section that Hydra merged after the model preset: the profile's (a file in
    conf/profile/) and the command line's (`train.learning_rate=3e-3`), section -> dotted keys."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    out: dict[str, list[str]] = {}
    profile = CONF_DIR / "profile" / f"{choices.get('profile')}.yaml"
    if choices.get("profile") and profile.is_file():
        for name, section in OmegaConf.to_container(OmegaConf.load(profile)).items():
            if isinstance(section, dict):
                out.setdefault(name, []).extend(_leaves(section))
    for o in OverridesParser.create().parse_overrides(list(overrides)):
        section, _, key = o.key_or_group.partition(".")
        if key and not o.is_delete():
            value = o.value()
            out.setdefault(section, []).extend([f"{key}.{k}" for k in _leaves(value)] if isinstance(value, dict)
                                               else [key])
    return out


def _leaves(d: dict, prefix: str = "") -> list[str]:
    return [leaf for k, v in d.items()
            for leaf in (_leaves(v, f"{prefix}{k}.") if isinstance(v, dict) and v else [f"{prefix}{k}"])]


def _in_recipe(message: str, section: str, recipe: Optional[str]) -> str:
    """Add where a bad key was written when the recipe file holds it: "'train.betta' (in recipe/x)"."""
    m = re.search(rf"'{section}\.(\w+)'", message)
    if recipe and m and m.group(1) in (OmegaConf.load(available_recipes()[recipe]).get(section) or {}):
        return message.replace(m.group(0), f"{m.group(0)} (in recipe/{recipe})", 1)
    return message
