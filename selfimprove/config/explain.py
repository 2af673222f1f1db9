"""OmegaConf's and Hydra's composition errors, turned into messages that name the valid keys."""
from __future__ import annotations

import difflib
import re
from dataclasses import fields, is_dataclass
from typing import Any, Optional, get_type_hints

from ..paths import CONF_DIR
from ..stages import stage_kinds
from .recipes import available_recipes
from .schema import GROUP_SCHEMAS, SHARED_KEYS, RunConfig


def _schema_named(name: str):
    """The config dataclass called `name`: a shared one here, or a stage kind's (or one nested in it)."""

    todo = [RunConfig, *GROUP_SCHEMAS.values(), *(k.schema for k in stage_kinds().values())]
    while todo:
        schema = todo.pop()
        if schema.__name__ == name:
            return schema
        todo += [h for h in get_type_hints(schema).values() if is_dataclass(h)]
    return None


def _schema_at(path: list[str], kinds: Optional[dict] = None):
    """The dataclass describing the config node at `path`, or None (leaves). `kinds`: the kind of
    each stage section (section name -> kind), which says what schema a section has."""
    node: Any = RunConfig
    if path and path[0] not in SHARED_KEYS:
        kind = (kinds or {}).get(path[0], path[0])
        node = stage_kinds()[kind].schema if kind in stage_kinds() else None
        path = path[1:]
    for part in path:
        hints = get_type_hints(node) if is_dataclass(node) else {}
        node = hints.get(part)
    return node if is_dataclass(node) else None


def explain_config_error(exc: BaseException, section: Optional[str] = None,
                         kinds: Optional[dict] = None) -> Optional[str]:
    """Turn a Hydra/OmegaConf composition error into a message that names the valid keys. `section`:
    the stage section the error came from (its keys are checked apart from the root); `kinds`: each
    stage section's kind, when known (a section's schema follows from its kind)."""
    text = f"{exc}\n{exc.__cause__ or ''}"
    m = re.search(r"Could not find '(\w+)/([^']+)'", text)
    if m:
        group, choice = m.groups()
        if group == "recipe":
            names = sorted(available_recipes())
            near = difflib.get_close_matches(choice, names, n=1)
            hint = f" Did you mean recipe={near[0]}?" if near else ""
            return (
                f"Unknown recipe '{choice}'. Available recipes: {', '.join(names)}.{hint} "
                f"Your own recipe folders can be added with SELFIMPROVE_RECIPE_PATH=/path/to/dir."
            )
        options = sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml")) if (CONF_DIR / group).is_dir() else []
        return f"Unknown choice '{choice}' for '{group}='. Available: {', '.join(options) or '(none)'}."
    m = re.search(r"Key '([^']+)' (?:not in|is not in) '?(\w+)'?\s+full_key: (\S+)", text)
    if m:
        key, _, full_key = m.groups()
        full_key = f"{section}.{full_key}" if section else full_key
        parent = full_key.split(".")[:-1]
        where = re.search(r"In '([^']+)'", text)
        origin = f" (in {where.group(1)})" if where and "recipe" in where.group(1) else ""
        obj = re.search(r"object_type=(\w+)", text)
        schema = _schema_named(obj.group(1)) if obj and obj.group(1) != "dict" else None
        schema = schema if is_dataclass(schema) else _schema_at(parent, kinds)
        if schema is not None:
            valid = [f.name for f in fields(schema)]
        elif not parent:  # the open root: shared keys and the sections composed so far
            valid = list(SHARED_KEYS) + ["<a stage section the recipe's stage lists name>"]
        else:
            valid = []
        near = difflib.get_close_matches(key, valid, n=1)
        hint = f" Did you mean '{'.'.join(parent + [near[0]])}'?" if near else ""
        plus = (" A new top-level key needs a leading +, e.g. +polish.kind=sft, and a stage list that names it."
                if not parent and "is not in struct" in text else "")
        where_keys = ".".join(parent) or "the top level"
        return (
            f"Unknown config key '{full_key}'{origin}. Valid keys in {where_keys}: "
            f"{', '.join(valid) or '(see the recipe)'}.{hint}{plus}"
        )
    m = re.search(r"Value '([^']*)' (?:of type '\w+' )?could not be converted to (\w+)\s+full_key: (\S+)", text)
    if m:
        value, typ, full_key = m.groups()
        full_key = f"{section}.{full_key}" if section else full_key
        return f"'{full_key}' must be of type {typ}, got '{value}'. Write for example {full_key}=" + {
            "Integer": "3", "Float": "0.7", "Boolean": "true"}.get(typ, "...") + "."
    return None
