"""Inline SVG charts for the offline HTML reports: plain markup, no script, nothing fetched.

`bar_chart`: a horizontal bar chart (labels on the left, one bar a row, the value at its end), sized to its
rows. `line_chart`: values over time (one polyline a series, a y axis from 0, a legend), e.g. a load run's
rate and latency percentiles second by second. Both read in any browser, print, and stay small.
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


@dataclass(frozen=True, slots=True)
class Series:
    """One line of a line chart: a value per x position (None leaves a gap)."""

    name: str
    values: tuple[float | None, ...]
    colour: str
    dashed: bool = False


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 times a power of ten at or above value (1 for nothing)."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power + 1e-12:
            return step * power
    return 10 * power  # pragma: no cover - the loop always returns


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 or value == int(value) else f"{value:g}"


def line_chart(
    series: list[Series],
    *,
    x_labels: list[str],
    title: str,
    css_class: str,
    unit: str = "",
    width: int = 600,
    height: int = 210,
    y_max: float | None = None,
) -> str:
    """An <svg> with one polyline a series over equally spaced x positions (e.g. seconds of a run), a y
    axis from 0 with four grid lines, at most eight x labels and a legend; sized for a report column."""
    left, right, top, bottom = 64, 24, 26, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max((len(s.values) for s in series), default=0)
    peak = max((v for s in series for v in s.values if v is not None), default=0.0)
    scale = 4 * nice_ceiling((y_max if y_max is not None else peak) / 4)  # four grid steps of a round size

    def x(i: int) -> float:
        return left + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)

    def y(v: float) -> float:
        return top + plot_h - plot_h * min(v, scale) / scale

    out = [
        f'<svg class="chart line {css_class}" role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}">',
        f"<title>{escape(title)}</title>",
    ]
    for k in range(5):
        value = scale * k / 4
        gy = y(value)
        out.append(
            f'<line x1="{left}" y1="{gy:.1f}" x2="{left + plot_w}" y2="{gy:.1f}" stroke="#d0d7de" '
            f'stroke-width="1"/><text x="{left - 6}" y="{gy + 4:.1f}" text-anchor="end">'
            f"{escape(_number(value))}{escape(unit) if k == 4 else ''}</text>"
        )
    if n:
        every = max(1, math.ceil(n / 8))
        for i in range(0, n, every):
            label = x_labels[i] if i < len(x_labels) else str(i)
            out.append(
                f'<text x="{x(i):.1f}" y="{height - 8}" text-anchor="middle" class="x">{escape(label)}</text>'
            )
    else:
        out.append(f'<text x="{left + 8}" y="{top + 20}" class="none">no data</text>')
    for s in series:
        runs: list[list[str]] = [[]]
        for i, v in enumerate(s.values):
            if v is None:
                if runs[-1]:
                    runs.append([])
                continue
            runs[-1].append(f"{x(i):.1f},{y(v):.1f}")
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        out.append(f'<g class="series"><title>{escape(s.name)}</title>')
        for points in runs:
            if len(points) == 1:
                cx, cy = points[0].split(",")
                out.append(f'<circle cx="{cx}" cy="{cy}" r="2" fill="{s.colour}"/>')
            elif points:
                out.append(
                    f'<polyline fill="none" stroke="{s.colour}" stroke-width="1.8"{dash} '
                    f'points="{" ".join(points)}"/>'
                )
        out.append("</g>")
    lx = left + 4
    for s in series:
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        out.append(
            f'<g class="legend"><line x1="{lx}" y1="12" x2="{lx + 18}" y2="12" stroke="{s.colour}" '
            f'stroke-width="2.5"{dash}/><text x="{lx + 22}" y="16">{escape(s.name)}</text></g>'
        )
        lx += 30 + 7 * len(s.name)
    out.append("</svg>")
    return "".join(out)
