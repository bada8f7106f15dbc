"""Fixed-width text tables of the CLI: one cell formatter, one row joiner."""
from __future__ import annotations

import math


def cell(x, spec: str) -> str:
    """``x`` formatted by ``spec`` (e.g. ``'9.3g'``), or ``-`` right-aligned to the spec's width
    when ``x`` is None or not a finite number."""
    width = int("".join(ch for ch in spec.split(".")[0] if ch.isdigit()) or 0)
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-".rjust(width)
    return format(x, spec)


def row(*cells: tuple) -> str:
    """Cells ``(value, spec)`` joined by one space; a plain string stands for itself."""
    return " ".join(c if isinstance(c, str) else cell(*c) for c in cells)
