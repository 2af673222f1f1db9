"""How `compare`, `ls` and the results pages show numbers to people (terminal table, markdown): accuracies as
percentages with one decimal, `mean ± half-width` for groups of seeds, and a table that wraps
instead of cutting a cell. csv and json keep the raw numbers (fractions, full precision)."""
from __future__ import annotations

import os
import re
import sys
from typing import Optional

from .paired import OWN_SEED_MODEL
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
                if f"{c}_ci95" in r and v is not None and half is None:
                    text += " (1 seed)"  # one seed reached this iteration: no interval to show
                elif f"{c}_ci95" in r and v is not None:
                    text += " ± " + (_num(half, pct[c]) if pct[c] else f"{half:.2g}")
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
    """Short headers (the caption explains them) so that the table fits 80 columns unwrapped."""
    header = ["A", "B", "iter A/B", "n", "A %", "B %", "A-B", "95% CI", "A>B", "B>A", "p sign", "p Holm"]
    cells = [[r["a"], r["b"], f"{r['iteration_a']}/{r['iteration_b']}", str(r["problems"]),
              f"{100 * r['accuracy_a']:.1f}", f"{100 * r['accuracy_b']:.1f}", f"{100 * r['diff']:+.1f}",
              f"[{100 * r['diff_low']:+.1f}, {100 * r['diff_high']:+.1f}]", str(r["a_better"]), str(r["b_better"]),
              f"{r['p_sign']:.2g}", f"{r['p_holm']:.2g}"] for r in rows]
    if any(r.get("seed_diff") is not None or r.get("seed_note") == OWN_SEED_MODEL for r in rows):
        header.append("A-B by seed")
        for line, r in zip(cells, rows):
            half = r.get("seed_diff_ci95")
            line.append(r.get("seed_note", "") if half is None else f"{100 * r['seed_diff']:+.1f} ± {100 * half:.1f}")
    return header, cells


def interval_cell(mean: Optional[float], half: Optional[float], pct: bool = True, sign: bool = False) -> str:
    """`mean ± half` (percent points for fractions); a figure from one seed says so."""
    if mean is None:
        return "-"
    fmt = "+.1f" if sign else ".1f"
    text = _num(mean, pct, fmt) if pct else f"{mean:.4g}"
    return text + (" (1 seed)" if half is None else " ± " + (_num(half, pct) if pct else f"{half:.2g}"))


def display_budgets(budgets: list[float], table: dict[str, list[tuple]], metric: str,
                    rows: Optional[list[dict]] = None) -> tuple[list[str], list[list[str]]]:
    """(header, cells) of `budget.equal_compute`: a row per group, a column per FLOPs budget."""
    pct = is_fraction(metric, [{metric: m} for cells in table.values() for m, _, _ in cells if m is not None])
    header = ["group"] + [f"{metric}{' %' if pct else ''} at {b:.3g} FLOPs" for b in budgets]
    return header, [[label] + [interval_cell(m, h, pct) for m, h, _ in cells] for label, cells in table.items()]


PAIRED_CAPTION = ("A-B: accuracy difference in points, each problem's correctness averaged over seeds; 95% CI: "
                  "paired bootstrap over problems; n: problems; A>B, B>A: problems where one is right more "
                  "often; p sign: exact two-sided sign test over those; p Holm: adjusted over all pairs; "
                  "A-B by seed: 95% t-interval of the differences between runs of the same seed that started "
                  "from the same seed model (which also covers the spread between seed models); n/a where "
                  "the two start from different seed models or share fewer than 2 seeds.")


def markdown(header: list[str], cells: list[list[str]]) -> str:
    esc = lambda s: s.replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(map(esc, header)) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(map(esc, c)) + " |" for c in cells])


def caption(groups: Optional[dict]) -> Optional[str]:
    if not groups:
        return None
    ns = sorted({len(v) for v in groups.values()})
    return f"mean ± half-width of the {INTERVAL} (n = {'/'.join(map(str, ns))} seeds; `seeds` column: per row)"


TEXT_WIDTH = 24  # a text column of a table too wide for the terminal folds at this width


def _table(header, cells, title, caption_text, narrow: bool = False):
    from rich import box
    from rich.table import Table

    table = Table(title=title, caption=caption_text, box=box.SIMPLE_HEAVY, caption_justify="left",
                  padding=0, show_edge=False)  # the box's blank divider: one space between columns
    for i, col in enumerate(header):
        # numbers keep their width (no_wrap); text columns give way (fold: what does not fit goes
        # on the next line). print_table never lets rich shrink a column below its content.
        number = all(" " not in c[i] and len(c[i]) <= 12 for c in cells) and col.lower() not in LEFT
        table.add_column(col, justify="right" if number else "left", overflow="fold", no_wrap=number,
                         max_width=None if number or not narrow else TEXT_WIDTH)
    for c in cells:
        table.add_row(*c)
    return table


def _width(console, table, which: str) -> int:
    from rich.measure import Measurement

    return getattr(Measurement.get(console, console.options.update(max_width=100_000), table), which)


def print_table(header: list[str], cells: list[list[str]], title: str, caption_text: Optional[str] = None,
                console=None) -> None:
    """A rich table at the terminal's width (COLUMNS if set). Piped to a file without COLUMNS it
    is as wide as its content, so no cell wraps. If the table does not fit, the `overrides`
    column moves under it (one line per run), text columns fold, and if the numbers alone do
    not fit either, each row is printed as `column: value` lines: no number is ever cut."""
    from rich.console import Console
    from rich.text import Text

    if console is None:
        console = Console(highlight=False)
        if not sys.stdout.isatty() and "COLUMNS" not in os.environ:
            wide = Console(width=100_000)
            console = Console(width=max(_width(wide, _table(header, cells, title, caption_text), "maximum"), 80),
                              highlight=False)
    notes = []
    if "overrides" in header and _width(console, _table(header, cells, title, caption_text), "maximum") > console.width:
        i = header.index("overrides")
        key = header.index("run") if "run" in header else 0
        seen: dict[str, str] = {}
        for c in cells:
            if c[i]:
                seen.setdefault(c[key], c[i])
        notes = [f"{name}: {ov}" for name, ov in seen.items()]
        header = header[:i] + header[i + 1:]
        cells = [c[:i] + c[i + 1:] for c in cells]
    narrow = _width(console, _table(header, cells, title, caption_text), "maximum") > console.width
    table = _table(header, cells, title, caption_text, narrow)
    if _width(console, table, "minimum") <= console.width:
        console.print(table)
    else:  # even folded text columns leave no room for the numbers: one block per row
        console.print(Text(title, style="italic"))
        for c in cells:
            console.print()
            for h, v in zip(header, c):
                console.print(Text(f"  {h}: {v}", overflow="fold"))
        if caption_text:
            console.print(Text(caption_text))
    if notes:
        console.print(Text("overrides:"))
        for line in notes:
            console.print(Text("  " + line, overflow="fold"))
