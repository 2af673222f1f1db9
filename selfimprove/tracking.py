"""What the user sees (rich console, progress bars, the per-iteration table) and wandb.

Everything shown is read from stage metrics, which the run directory already holds on disk.
"""
from __future__ import annotations

import contextlib
import json
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

from rich.console import Console as RichConsole
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table


class Console:
    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.rich = RichConsole(stderr=False, highlight=False)

    def log(self, message: str) -> None:
        self.rich.print(message)

    @contextlib.contextmanager
    def progress(self, description: str, total: int, completed: int = 0) -> Iterator[Callable[[int], None]]:
        """A progress bar for one loop; yields `advance(n)`. Quiet mode prints start and end only."""
        if self.quiet or not self.rich.is_terminal:
            self.log(f"{description} ({total})")
            yield lambda n=1: None
            return
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn())
        with Progress(*columns, console=self.rich, transient=True) as bar:
            task = bar.add_task(description, total=total, completed=completed)
            yield lambda n=1: bar.advance(task, n)

    def iteration_table(self, rows: list[dict], columns: list[str]) -> None:
        """One row per iteration; a column is `stage.metric` looked up in that iteration's rows."""
        table = Table(title="selfimprove: per-iteration summary")
        table.add_column("iteration", justify="right")
        for col in columns:
            table.add_column(col.split(".", 1)[1], justify="right")
        for it in sorted({r["iteration"] for r in rows}):
            by_stage = {r["stage"]: r for r in rows if r["iteration"] == it}
            cells = []
            for col in columns:
                stage, metric = col.split(".", 1)
                value = by_stage.get(stage, {}).get(metric)
                cells.append("-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value))
            table.add_row(str(it), *cells)
        self.rich.print(table)


class WandbTracker:
    """One wandb run per selfimprove run; its id is saved in the run directory so that a resumed
    run continues the same wandb run. Disabled by default (no network, no hang)."""

    def __init__(self, cfg, run_dir: Path, config: dict[str, Any], name: str, group: str | None = None):
        self.run = None
        if cfg.wandb_mode == "disabled":
            return
        import wandb

        id_file = run_dir / "wandb_id.json"
        run_id = json.loads(id_file.read_text())["id"] if id_file.exists() else uuid.uuid4().hex[:12]
        id_file.write_text(json.dumps({"id": run_id}))
        self.run = wandb.init(project=cfg.wandb_project, entity=cfg.wandb_entity, mode=cfg.wandb_mode,
                              id=run_id, resume="allow", name=name, group=group, config=config,
                              dir=str(run_dir))

    def log_stage(self, iteration: int, stage: str, metrics: dict) -> None:
        if self.run is not None:
            self.run.log({f"{stage}/{k}": v for k, v in metrics.items() if isinstance(v, (int, float))}
                         | {"iteration": iteration})

    def finish(self) -> None:
        if self.run is not None:
            self.run.finish()
