"""How `compare` and `ls` show numbers to people (terminal table, markdown): accuracies as
percentages with one decimal, `mean ± half-width` for groups of seeds, and a table that wraps
instead of cutting a cell. csv and json keep the raw numbers (fractions, full precision)."""
from __future__ import annotations

import os
import re
import sys
from typing import Optional

from .stats import INTERVAL

# Metrics that are fractions of problems (or differences of them), shown as percentages.
FRACTION = re.compile(r"accuracy|acc_t|^acc|pass@|maj@|majority@|verifier@|oracle@|fraction|precision|^delta")
HIDDEN = ("_ci95", "_low", "_high")  # folded into the `mean ± half` cell
LEFT = ("run", "recipe", "overrides", "status", "group", "a", "b")


def is_fraction(metric: str, rows: list[dict]) -> bool:
    vals = [r.get(metric) for r in rows if isinstance(r.get(metric), (int, float))]
    return bool(FRACTION.search(metric)) and all(-1 <= v <= 1 for v in vals)


def _num(v, pct: bool, digits: str = ".1f") -> str:
    if v is None:
        return ""
    if pct:
        return format(100 * v, digits)
    if isinstance(v, float) and not v.is_integer():
        return f"{v:.4g}"
    return str(int(v)) if isinstance(v, float) else str(v)


def display(rows: list[dict], metrics: list[str]) -> tuple[list[str], list[list[str]]]:
    """(header, cells) of comparison rows, grouped (with `_ci95` columns) or not."""
    if not rows:
        return [], []
    pct = {m: is_fraction(m, rows) for m in metrics}
    cols = [c for c in rows[0] if c != "interval" and not (c.endswith(HIDDEN) and c.rsplit("_", 1)[0] in metrics)]
    header = [f"{c} %" if pct.get(c) else c for c in cols]
    cells = []
    for r in rows:
        line = []
        for c in cols:
            v = r[c]
            if c in metrics:
                half = r.get(f"{c}_ci95")
                text = _num(v, pct[c]) if pct[c] else _num(v, False)
                if f"{c}_ci95" in r and v is not None:
                    text += " ± " + ((_num(half, pct[c]) if pct[c] else f"{half:.2g}") if half is not None else "?")
                line.append(text)
            elif c == "wall_s":
                line.append("" if v is None else f"{v:.0f}")
            elif c == "cum_flops":
                line.append("" if v is None else f"{v:.3g}")
            else:
                line.append("" if v is None else str(v))
        cells.append(line)
    return header, cells


def display_paired(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    header = ["A", "B", "iteration A/B", "problems", "A %", "B %", "A - B points [95% bootstrap]",
              "problems A better / B better", "sign test p", "Holm p"]
    cells = [[r["a"], r["b"], f"{r['iteration_a']}/{r['iteration_b']}", str(r["problems"]),
              f"{100 * r['accuracy_a']:.1f}", f"{100 * r['accuracy_b']:.1f}",
              f"{100 * r['diff']:+.1f} [{100 * r['diff_low']:+.1f}, {100 * r['diff_high']:+.1f}]",
              f"{r['a_better']} / {r['b_better']}", f"{r['p_sign']:.3g}", f"{r['p_holm']:.3g}"] for r in rows]
    return header, cells


def markdown(header: list[str], cells: list[list[str]]) -> str:
    esc = lambda s: s.replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(map(esc, header)) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(map(esc, c)) + " |" for c in cells])


def caption(groups: Optional[dict]) -> Optional[str]:
    if not groups:
        return None
    ns = sorted({len(v) for v in groups.values()})
    return f"mean ± half-width of the {INTERVAL} (n = {'/'.join(map(str, ns))} seeds; `seeds` column: per row)"


def _table(header, cells, title, caption_text):
    from rich import box
    from rich.table import Table

    table = Table(title=title, caption=caption_text, box=box.SIMPLE_HEAVY, caption_justify="left")
    for col in header:
        # fold: a cell too wide for its column wraps onto more lines; nothing is ever cut to "…"
        table.add_column(col, justify="left" if col in LEFT else "right", overflow="fold")
    for c in cells:
        table.add_row(*c)
    return table


def print_table(header: list[str], cells: list[list[str]], title: str, caption_text: Optional[str] = None,
                console=None) -> None:
    """A rich table at the terminal's width (COLUMNS if set). Piped to a file without COLUMNS it
    is as wide as its content, so no cell wraps. If the table does not fit, the `overrides`
    column moves under the table, one line per row that has overrides."""
    from rich.console import Console
    from rich.measure import Measurement

    if console is None:
        console = Console()
        if not sys.stdout.isatty() and "COLUMNS" not in os.environ:
            wide = Console(width=100_000)
            need = Measurement.get(wide, wide.options, _table(header, cells, title, caption_text)).maximum
            console = Console(width=max(need, 80))
    notes = []
    if "overrides" in header:
        need = Measurement.get(console, console.options.update(max_width=100_000),
                               _table(header, cells, title, caption_text)).maximum
        if need > console.width:
            i = header.index("overrides")
            key = header.index("run") if "run" in header else 0
            seen = {}
            for c in cells:
                if c[i]:
                    seen.setdefault(c[key], c[i])
            notes = [f"{name}: {ov}" for name, ov in seen.items()]
            header = header[:i] + header[i + 1:]
            cells = [c[:i] + c[i + 1:] for c in cells]
    console.print(_table(header, cells, title, caption_text))
    if notes:
        console.print("overrides:", markup=False)
        for line in notes:
            console.print("  " + line, markup=False, highlight=False)
