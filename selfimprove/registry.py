"""Plug-in registries: a dict filled by a decorator, keyed by the name used in YAML."""
from __future__ import annotations

from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class Registry(dict, Generic[T]):
    def __init__(self, what: str):
        super().__init__()
        self.what = what

    def register(self, name: str, wrap: Callable[[T], object] = lambda x: x) -> Callable[[T], T]:
        """Decorator storing `wrap(obj)` under `name`; a second registration of a name is an error."""

        def deco(obj: T) -> T:
            if name in self:
                raise ValueError(f"{self.what} '{name}' registered twice")
            self[name] = wrap(obj)
            return obj

        return deco

    def get_or_explain(self, name: str):
        if name not in self:
            raise ValueError(f"Unknown {self.what} '{name}'. Available: {', '.join(sorted(self))}.")
        return self[name]
