"""Plain-text tables for the terminal (the JSON next to them carries the same figures)."""

from __future__ import annotations

import math
from typing import Sequence


def _fmt(v, spec: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, (int, float)) and spec:
        return format(v, spec)
    return str(v)


def format_table(rows: Sequence[dict], columns: Sequence[tuple[str, str, str]]) -> str:
    """``columns`` = (key, header, format spec). Returns an aligned table.

    >>> print(format_table([{"a": "x", "b": 1.5}], [("a", "name", ""), ("b", "value", ".2f")]))
    name  value
    ----  -----
    x      1.50
    """
    cells = [[h for _, h, _ in columns]] + [[_fmt(r.get(k), f) for k, _, f in columns] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(columns))]
    lines = []
    for j, row in enumerate(cells):
        parts = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(parts).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
