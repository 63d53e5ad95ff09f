"""Text for people, one way everywhere: counts in K / M / G (12345678 -> '12.3M': parameters,
MACs, images) and aligned text tables (dry runs, sweep summaries, study verdicts)."""

from __future__ import annotations

from collections.abc import Sequence

_UNITS = (("G", 1e9), ("M", 1e6), ("K", 1e3))


def si(value: float, spec: str = ".3g", below: str | None = None, sep: str = "") -> str:
    """``value`` in K / M / G with format ``spec`` (``sep`` before the unit); a value under a
    thousand with format ``below`` (default ``spec``; ``""`` prints it as ``str`` would)."""
    for unit, scale in _UNITS:
        if abs(value) >= scale:
            return f"{value / scale:{spec}}{sep}{unit}"
    return format(value, spec if below is None else below)


def columns(rows: Sequence[Sequence[str]], indent: str = "", drop: str | None = None
            ) -> list[str]:
    """``rows`` (the first is the header) as lines of left-aligned columns two spaces apart;
    with ``drop``, a column whose every body cell is ``drop`` (e.g. '—') is left out."""
    if not rows:
        return []
    keep = list(range(len(rows[0])))
    if drop is not None and len(rows) > 1:
        keep = [i for i in keep if any(r[i] != drop for r in rows[1:])]
    cut = [[str(r[i]) for i in keep] for r in rows]
    widths = [max(len(r[i]) for r in cut) for i in range(len(keep))]
    return [(indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True))).rstrip()
            for r in cut]


__all__ = ["columns", "si"]
