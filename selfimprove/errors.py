"""The errors a user sees without a traceback, and the list a config check fills.

At the bottom of the package: every layer raises these, and cli.py prints them as one message.
"""
from __future__ import annotations

import sys


class ConfigError(ValueError):
    """A user-facing configuration problem; its message says what to write instead."""


class StageError(RuntimeError):
    """A stage cannot go on (empty data, NaN loss...): the message says why and what to try."""


class Problems(list):
    """What a stage kind's `check(name, section, cfg)` returns: each message says what to write instead."""

    def need(self, ok: bool, message: str) -> None:
        if not ok:
            self.append(message)

    def not_test(self, name: str, split: str) -> None:
        """What is trained on or chosen by never comes from the test split (it is for reporting only)."""
        self.need(split != "test", f"{name} reads the test split, which is for reporting only; use train (or val "
                                   f"to choose something).")


def installed(module: str) -> bool:
    """Whether an optional dependency (peft, vllm, deepspeed...) can be imported, without importing it."""
    import importlib.util

    return importlib.util.find_spec(module) is not None


def fail(message: str, code: int = 2) -> None:
    """The command line's clean exit: one line on stderr, no traceback."""
    print(f"selfimprove: error: {message}", file=sys.stderr)
    sys.exit(code)
