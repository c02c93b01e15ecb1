"""Column widths for a table that has to fit a terminal: columns shrink, none is dropped.

Each column has the width it would like and the narrowest it may go. When the preferred widths do not
fit, the columns that can give up width do so in proportion to what they can give; a cell longer than
its column is cut with an ellipsis, and the caller counts the cuts to say that something is hidden.
Below the sum of the minimums the table cannot fit at all and the caller wraps its cells instead.
Widths are terminal cells (a Chinese character takes two).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.cells import cell_len, set_cell_size

ELLIPSIS = "…"


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    width: int
    """The width it would like."""
    minimum: int
    """The narrowest it may go; equal to `width` for a column that must never be cut."""


def fit(columns: Sequence[Column], total: int, gap: int = 2) -> list[int]:
    """Widths for `columns` whose sum, with `gap` cells between columns, is at most `total` when the
    minimums allow it (else the minimums)."""
    widths = [c.width for c in columns]
    over = sum(widths) + gap * (len(columns) - 1) - total
    if over <= 0:
        return widths
    slack = [c.width - c.minimum for c in columns]
    if over >= sum(slack):
        return [c.minimum for c in columns]
    given = [over * s // sum(slack) for s in slack]
    left = over - sum(given)
    for i in sorted(range(len(columns)), key=lambda i: slack[i] - given[i], reverse=True):
        if left == 0:
            break
        if given[i] < slack[i]:
            given[i] += 1
            left -= 1
    return [w - g for w, g in zip(widths, given, strict=True)]


def cut(text: str, width: int) -> tuple[str, bool]:
    """`text` cut to `width` terminal cells, ending in an ellipsis when anything was cut; and whether it
    was."""
    if cell_len(text) <= width:
        return text, False
    if width <= 1:
        return ELLIPSIS[:width], True
    return set_cell_size(text, width - 1).rstrip(" ") + ELLIPSIS, True  # a split wide character pads
