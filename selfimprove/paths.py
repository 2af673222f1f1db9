"""Where the shipped configs and recipes are (a wheel and a checkout keep them in different places)."""
from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def _shipped_dir(name: str) -> Path:
    # A wheel carries conf/ and recipes/ inside the package; a checkout (or editable install)
    # has them beside it at the repository's top level.
    inside = PACKAGE_DIR / name
    return inside if inside.is_dir() else PACKAGE_DIR.parent / name


CONF_DIR = _shipped_dir("conf")
RECIPES_DIR = _shipped_dir("recipes")
