"""Inline SVG bar charts for the offline HTML report: plain markup, no script, nothing fetched.

Each chart is a horizontal bar chart (labels on the left, one bar a row, the value at its end), sized to its
rows, so it reads in any browser, prints, and stays a few hundred bytes a row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from xml.sax.saxutils import escape

COLOURS = {"error": "#b00020", "warning": "#c77700", "info": "#6b7280", "waived": "#2f6db5", "ok": "#1b7f3b"}


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value: float
    text: str  # what is printed at the end of the bar
    colour: str
    title: str = ""  # tooltip


def bar_chart(
    bars: list[Bar], *, title: str, css_class: str, maximum: float | None = None, log: bool = False
) -> str:
    """An <svg> with one bar a row; maximum fixes the scale (e.g. 100 for percentages); log makes bar
    lengths follow log10(1 + value), so 3 errors stay visible beside 3,000 warnings."""
    row, label_w, bar_w, pad = 22, 230, 380, 6
    top = 8
    height = top + row * max(len(bars), 1) + 4
    width = label_w + bar_w + 110
    scale = maximum if maximum else max((b.value for b in bars), default=0) or 1
    if log:
        scale = math.log10(1 + scale) or 1
    out = [
        f'<svg class="chart {css_class}" role="img" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}">',
        f"<title>{escape(title)}</title>",
    ]
    if not bars:
        out.append(f'<text x="4" y="{top + 14}" class="none">none</text>')
    for i, b in enumerate(bars):
        y = top + i * row
        v = math.log10(1 + b.value) if log else b.value
        w = 0 if b.value <= 0 else max(2, round(bar_w * v / scale))
        label = b.label if len(b.label) <= 34 else b.label[:33] + "…"
        out.append(
            f'<g class="bar"><title>{escape(b.title or b.label)}</title>'
            f'<text x="{label_w - pad}" y="{y + 15}" text-anchor="end">{escape(label)}</text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{w}" height="{row - 6}" fill="{b.colour}"/>'
            f'<text x="{label_w + w + pad}" y="{y + 15}">{escape(b.text)}</text></g>'
        )
    out.append("</svg>")
    return "".join(out)
