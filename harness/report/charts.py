"""Inline SVG charts for the offline HTML reports: plain markup, no script, nothing fetched.

`bar_chart`: a horizontal bar chart (labels on the left, one bar a row, the value at its end), sized to its
rows. `line_chart`: values over time (one polyline a series, a y axis from 0, a legend), e.g. a load run's
rate and latency percentiles second by second. `time_chart` draws values per time bucket (stacked bars,
lines, marked moments and spans) with clock-time ticks. All read in any browser, print, and stay small.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
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
    """One line of a chart (or one layer of a time chart's stacked bars): a value per x position or time
    bucket; None leaves a gap (no data)."""

    name: str
    values: Sequence[float | None]
    colour: str
    dashed: bool = False
    style: str = "line"
    """Time charts: "line" or "bar" (bar series stack in the order given)."""


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


# -- charts over time ------------------------------------------------------------------------------

SERIES_COLOURS = ("#2f6db5", "#b00020", "#1b7f3b", "#c77700", "#7b3fa0", "#0f7c80", "#6b7280")
_TIME_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
               172800, 604800)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Marker:
    """A moment drawn as a dashed vertical line with a short label (a failover, a switch, a silence)."""

    at: float  # epoch seconds
    label: str
    colour: str = "#6b7280"
    until: float | None = None  # shade the span from `at` to `until` instead of one line


def _number(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100 or value == int(value):
        return f"{value:,.0f}"
    return f"{value:.3g}"


def time_chart(
    series: Sequence[Series],
    *,
    start: float,
    step_s: float,
    title: str,
    css_class: str,
    unit: str = "",
    y_max: float | None = None,
    markers: Sequence[Marker] = (),
    tz: tzinfo | None = None,
    width: int = 760,
    height: int = 230,
) -> str:
    """An <svg> chart of values per time bucket (bucket i covers start + i*step_s): bars, lines or both.

    Axes have round ticks; the x labels are clock times in `tz` (the machine's zone when None), with the
    date when the chart spans days. Each bucket carries a tooltip with its time span and every value, so
    a reader can point at a bar. `y_max` fixes the scale (100 for percentages).
    """
    buckets = max((len(s.values) for s in series), default=0)
    left, right, top, bottom = 62, 12, 26, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    bars = [s for s in series if s.style == "bar"]
    lines = [s for s in series if s.style != "bar"]
    stacked = [sum((s.values[i] or 0) for s in bars if i < len(s.values)) for i in range(buckets)]
    highest = max([*stacked, *(v for s in lines for v in s.values if v is not None)], default=0)
    scale = y_max if y_max else nice_ceiling(highest)
    slot = plot_w / max(buckets, 1)
    end = start + buckets * step_s

    def x_of(t: float) -> float:
        return left + (t - start) / (buckets * step_s or 1) * plot_w

    def y_of(v: float) -> float:
        return top + plot_h - min(v, scale) / scale * plot_h

    out = [
        f'<svg class="chart time {css_class}" role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}">',
        f"<title>{escape(title)}</title>",
    ]
    # legend
    lx = left
    for s in series:
        out.append(
            f'<rect x="{lx}" y="6" width="10" height="10" fill="{s.colour}"/>'
            f'<text class="legend" x="{lx + 14}" y="15">{escape(s.name)}</text>'
        )
        lx += 24 + 7 * len(s.name)
    # y grid and labels
    for k in range(5):
        v = scale * k / 4
        y = y_of(v)
        out.append(
            f'<line class="grid" x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="#d0d7de" stroke-width="{1 if k == 0 else 0.5}"/>'
            f'<text class="tick" x="{left - 5}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(_number(v) + unit)}</text>"
        )
    # x ticks on round clock times
    if buckets:
        span = end - start
        step = next((s for s in _TIME_STEPS if span / s <= 8), _TIME_STEPS[-1])
        offset = _utc_offset(start, tz)
        first = math.ceil((start + offset) / step) * step - offset
        with_date = span > 86400 or _local(start, tz).date() != _local(end, tz).date()
        fmt = (
            "%m-%d" if step >= 86400 else "%m-%d %H:%M" if with_date else "%H:%M:%S" if step < 60 else "%H:%M"
        )
        t = first
        while t <= end + 1e-9:
            x = x_of(t)
            out.append(
                f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top + plot_h}" y2="{top + plot_h + 4}" '
                f'stroke="#57606a"/><text class="tick" x="{x:.1f}" y="{top + plot_h + 16}" '
                f'text-anchor="middle">{_local(t, tz).strftime(fmt)}</text>'
            )
            t += step
    else:
        out.append(f'<text x="{left + 6}" y="{top + 20}" class="none">no data</text>')
    # marker spans and lines, under the data; a label only where it does not run into the one before
    label_ends = [-math.inf, -math.inf]  # two rows of labels: the second takes one that would collide
    for m in sorted(markers, key=lambda m: m.at):
        if m.at > end or (m.until or m.at) < start:
            continue
        x = x_of(max(m.at, start))
        if m.until is not None:
            x2 = x_of(min(m.until, end))
            out.append(
                f'<rect class="marker" x="{x:.1f}" y="{top}" width="{max(x2 - x, 1):.1f}" '
                f'height="{plot_h}" fill="{m.colour}" fill-opacity="0.12"><title>{escape(m.label)}'
                "</title></rect>"
            )
        else:
            out.append(
                f'<line class="marker" x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + plot_h}" '
                f'stroke="{m.colour}" stroke-dasharray="4 3"><title>{escape(m.label)}</title></line>'
            )
        label = m.label if len(m.label) <= 28 else m.label[:27] + "…"
        text_w = 6 * len(label)
        right_side = x > left + plot_w * 0.7  # a label near the right edge goes to the line's left
        begins = x - 3 - text_w if right_side else x + 3
        row = next((r for r, end in enumerate(label_ends) if begins >= end + 6), None)
        if row is None:
            continue  # it would run into the labels before it: the line's tooltip still says it
        label_ends[row] = begins + text_w
        out.append(
            f'<text class="marker-label" x="{x - 3 if right_side else x + 3:.1f}" y="{top + 10 + 12 * row}" '
            f'fill="{m.colour}" text-anchor="{"end" if right_side else "start"}">{escape(label)}</text>'
        )
    # bars, stacked, one tooltip per bucket
    for i in range(buckets):
        base = 0.0
        x = left + i * slot
        tip = [
            f"{_local(start + i * step_s, tz):%m-%d %H:%M:%S}–{_local(start + (i + 1) * step_s, tz):%H:%M:%S}"
        ]
        tip += [
            f"{s.name}: {'-' if i >= len(s.values) or s.values[i] is None else _number(s.values[i])}"
            for s in series
        ]
        parts = []
        for s in bars:
            v = s.values[i] if i < len(s.values) else None
            if not v:
                continue
            y0, y1 = y_of(base), y_of(base + v)
            parts.append(
                f'<rect x="{x + slot * 0.08:.1f}" y="{y1:.1f}" width="{max(slot * 0.84, 0.8):.1f}" '
                f'height="{max(y0 - y1, 0.5):.1f}" fill="{s.colour}"/>'
            )
            base += v
        out.append(
            f'<g class="bucket"><title>{escape(" · ".join(tip))}</title>'
            f'<rect x="{x:.1f}" y="{top}" width="{slot:.1f}" height="{plot_h}" fill="transparent"/>'
            f"{''.join(parts)}</g>"
        )
    # lines, broken where a bucket has no value
    for s in lines:
        run: list[str] = []
        runs: list[list[str]] = []
        for i, v in enumerate(s.values):
            if v is None:
                if run:
                    runs.append(run)
                run = []
                continue
            run.append(f"{left + (i + 0.5) * slot:.1f},{y_of(v):.1f}")
        if run:
            runs.append(run)
        for r in runs:
            if len(r) == 1:
                cx, cy = r[0].split(",")
                out.append(f'<circle cx="{cx}" cy="{cy}" r="2" fill="{s.colour}"/>')
            else:
                out.append(
                    f'<polyline class="line" points="{" ".join(r)}" fill="none" stroke="{s.colour}" '
                    'stroke-width="1.6" stroke-linejoin="round"/>'
                )
    out.append("</svg>")
    return "".join(out)


def _local(epoch: float, tz: tzinfo | None) -> datetime:
    return datetime.fromtimestamp(epoch, tz) if tz is not None else datetime.fromtimestamp(epoch)


def _utc_offset(epoch: float, tz: tzinfo | None) -> float:
    offset = _local(epoch, tz).astimezone().utcoffset() if tz is None else _local(epoch, tz).utcoffset()
    return offset.total_seconds() if offset is not None else 0.0
