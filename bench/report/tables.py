"""Report tables as data (columns, cells with display text, sort key and raw value) and their
three renderings: sortable HTML, Markdown and CSV. Every string is escaped for its format."""

from __future__ import annotations

import csv
import html
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.report.model import Stat
from bench.text import si


@dataclass(frozen=True)
class Cell:
    """``text`` shown, ``sort`` the key the HTML table sorts by (number or text), ``raw`` the
    CSV value, ``html`` optional markup replacing the escaped text (already safe)."""

    text: str = ""
    sort: float | str | None = None
    raw: float | str | None = None
    html: str | None = None


@dataclass
class Table:
    id: str
    columns: list[str]
    rows: list[list[Cell]] = field(default_factory=list)
    numeric: set[int] = field(default_factory=set)  # right-aligned columns
    css: dict[int, str] = field(default_factory=dict)  # a column's cell class (``id``: wraps)


# --- formatting -------------------------------------------------------------------------------


def count(n: float | None) -> Cell:
    """11166 -> '11.2K' (sorted and exported as the number)."""
    if n is None or not math.isfinite(n):
        return Cell()
    return Cell(si(n, below=".0f"), n, n)


def number(v: float | None, digits: int = 3) -> Cell:
    if v is None or not math.isfinite(v):
        return Cell()
    text = f"{v:,.0f}" if abs(v) >= 10 ** digits else f"{v:.{digits}g}"
    return Cell(text, v, v)


def fixed(v: float | None, decimals: int = 2) -> Cell:
    if v is None or not math.isfinite(v):
        return Cell()
    return Cell(f"{v:.{decimals}f}", v, v)


def mean_std(s: Stat | None, decimals: int = 2) -> Cell:
    """'92.31 ± 0.42' over several seeds, '92.31' for one."""
    if s is None:
        return Cell()
    text = f"{s.mean:.{decimals}f}"
    if s.n > 1:
        text += f" ± {s.std:.{decimals}f}"
    return Cell(text, s.mean, s.mean)


def accuracy(s: Stat | None, decimals: int = 2) -> Cell:
    """``mean_std`` with the 95% Wilson interval of the split's size when known:
    '92.31 ± 0.42 [90.1, 94.0]' (the interval on a second, smaller line in HTML)."""
    cell = mean_std(s, decimals)
    if s is None or s.lo is None or s.hi is None:
        return cell
    ci = f"[{s.lo:.1f}, {s.hi:.1f}]"
    markup = (f'{html.escape(cell.text)}<br><small class="ci" title="95% Wilson interval, '
              f'{s.images} images">{ci}</small>')
    return Cell(f"{cell.text} {ci}", cell.sort, cell.raw, markup)


def measured(s: Stat | None) -> Cell:
    """A measurement with its spread: '1,234 ± 56' (the std over trials, or as logged)."""
    cell = number(s.mean if s else None)
    if s is None or not s.std or not cell.text:
        return cell
    decimals = len(cell.text.split(".")[1]) if "." in cell.text else 0
    return Cell(f"{cell.text} ± {s.std:,.{decimals}f}", cell.sort, cell.raw)


def text(value: object, sort: float | str | None = None, markup: str | None = None) -> Cell:
    t = "" if value is None else str(value)
    return Cell(t, t if sort is None else sort, t, markup)


# --- renderings --------------------------------------------------------------------------------


def _attr(value: float | str | None) -> str:
    if value is None or value == "":
        return ' data-v=""'  # sorted last
    if isinstance(value, float):
        value = repr(value)
    return f' data-v="{html.escape(str(value), quote=True)}"'


def to_html(table: Table, caption: str = "") -> str:
    num = ' class="num"'
    head = "".join(
        f'<th scope="col"{num if i in table.numeric else ""}>{html.escape(c)}</th>'
        for i, c in enumerate(table.columns))
    body = []
    for row in table.rows:
        cells = []
        for i, cell in enumerate(row):
            content = cell.html if cell.html is not None else html.escape(cell.text)
            classes = " ".join(c for c in ("num" if i in table.numeric else "",
                                            table.css.get(i, "")) if c)
            cls = f' class="{classes}"' if classes else ""
            cells.append(f"<td{cls}{_attr(cell.sort)}>{content}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return (f'<div class="scroll"><table class="sortable" id="{html.escape(table.id)}-table">{cap}'
            f"<thead><tr>{head}</tr></thead><tbody>\n" + "\n".join(body)
            + "\n</tbody></table></div>")


def _md_cell(value: str) -> str:
    value = html.escape(value.replace("\r", " ").replace("\n", " "), quote=False)
    return value.replace("|", "\\|").replace("`", "\\`") or " "


def to_markdown(table: Table) -> str:
    lines = ["| " + " | ".join(_md_cell(c) for c in table.columns) + " |",
             "|" + "|".join("---:" if i in table.numeric else "---"
                            for i in range(len(table.columns))) + "|"]
    for row in table.rows:
        lines.append("| " + " | ".join(_md_cell(c.text) for c in row) + " |")
    return "\n".join(lines)


_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _csv_value(cell: Cell) -> str | float:
    raw = cell.raw if cell.raw is not None else cell.text
    if isinstance(raw, str) and raw.startswith(_FORMULA):
        return "'" + raw  # a spreadsheet would run it as a formula
    return raw


def to_csv(table: Table, columns: Sequence[str] | None = None) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns or table.columns)
    for row in table.rows:
        w.writerow([_csv_value(c) for c in row])
    return buf.getvalue()
