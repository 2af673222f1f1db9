"""Finding the trainer checkpoint a killed train stage resumes from."""
from __future__ import annotations

import json
import shutil
from pathlib import Path


def last_complete_checkpoint(checkpoints: Path) -> str | None:
    """The newest trainer checkpoint that was completely written. The Trainer writes
    trainer_state.json last, so a checkpoint without a readable one was cut off by a kill; it is
    removed, and training resumes from the one before it."""
    found = sorted(checkpoints.glob("checkpoint-*"), key=lambda d: int(d.name.rsplit("-", 1)[-1]), reverse=True)
    for ckpt in found:
        try:
            json.loads((ckpt / "trainer_state.json").read_text())
            return str(ckpt)
        except (OSError, ValueError):
            shutil.rmtree(ckpt, ignore_errors=True)
    return None
