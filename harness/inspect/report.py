"""The inspection in its three forms: JSON (the data as is), offline HTML with charts over time, and the
one-page text for the weekly 巡检 record. Pure functions of the result dict."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from harness.report.charts import COLOURS, Marker, Series, time_chart
from harness.report.page import render

FAILOVER_COLOUR = "#c77700"
SILENCE_COLOUR = "#6b7280"
CHART_WIDTH = 600  # two charts side by side on a laptop screen and on A4 landscape


def render_json(result: dict[str, Any]) -> str:
    return json.dumps(result, ensure_ascii=False, indent=1) + "\n"


def render_html(result: dict[str, Any]) -> str:
    charts = {ch["channel"]: _charts(ch) for ch in result["channels"]}
    return render(
        "inspection.html",
        r=result,
        charts=charts,
        fmt=_fmt,
        pct=_pct,
        trend=_trend,
        summary=result["run"]["report"] == "summary",
    )


def _charts(ch: dict[str, Any]) -> dict[str, str]:
    s = ch["series"]
    start, step = s["start"], s["bucket_s"]
    markers = [Marker(_epoch(e["at"]), f"{e['kind']} → {e['to']}", FAILOVER_COLOUR) for e in ch["failovers"]]
    markers += [
        Marker(_epoch(g["from"]), f"silence {g['minutes']:.0f} min", SILENCE_COLOUR, until=_epoch(g["to"]))
        for g in ch["silences"]
    ]
    ok = [v - f for v, f in zip(s["volume"], s["failed"], strict=True)]
    unit = _step_name(step)
    name = ch["channel"]
    return {
        "volume": time_chart(
            [
                Series("ok", ok, COLOURS["ok"], style="bar"),
                Series("failed", s["failed"], COLOURS["error"], style="bar"),
            ],
            start=start, step_s=step, title=f"{name}: exchanges per {unit}", css_class="volume",
            markers=markers, width=CHART_WIDTH,
        ),
        "error_rate": time_chart(
            [Series("error rate %", s["error_rate"], COLOURS["error"])], start=start, step_s=step,
            title=f"{name}: error rate per {unit}", css_class="error-rate", unit="%", markers=markers,
            y_max=100 if any(v and v > 50 for v in s["error_rate"]) else None, width=CHART_WIDTH,
        ),
        "p95": time_chart(
            [Series("p95 ms", s["p95_ms"], COLOURS["waived"])], start=start, step_s=step,
            title=f"{name}: latency p95 per {unit}", css_class="p95", unit=" ms", markers=markers,
            width=CHART_WIDTH,
        ),
    }  # fmt: skip


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _step_name(step: int) -> str:
    if step % 86400 == 0:
        return "day" if step == 86400 else f"{step // 86400} days"
    if step % 3600 == 0:
        return "hour" if step == 3600 else f"{step // 3600} hours"
    return "minute" if step == 60 else f"{step // 60} minutes"


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def _pct(value: float | None) -> str:
    if value is None:
        return "–"
    return "100 %" if value == 100 else f"{value:.2f} %"


def _trend(change: dict[str, Any] | None, key: str, good_when: str = "up") -> tuple[str, str]:
    """(text, css class) of one change figure: '+12.0 %' in green when it moved the good way."""
    if not change or change.get(key) is None:
        return "", ""
    v = change[key]
    unit = " pt" if key.endswith("points") else " %"
    text = f"{v:+.{2 if unit == ' pt' else 1}f}{unit}"
    if v == 0:
        return text, "muted"
    better = (v > 0) == (good_when == "up")
    return text, "up" if better else "down"


def render_text(result: dict[str, Any]) -> str:
    """The one-page summary: window, verdict, one line a channel, breaches, top failures."""
    w = result["window"]
    run = result["run"]
    title = "Capture summary" if run["report"] == "summary" else "Interface inspection (接口巡检)"
    lines = [
        f"{title}: {w['since_local']} to {w['until_local']}",
        f"store {run['store']}" + ("" if run.get("live_only", True) else " (replays included)"),
    ]
    if run["report"] != "summary":
        sla = result["sla"]
        breaches = sla["breaches"]
        lines.append(
            f"verdict {result['verdict']}"
            + (
                f" ({len(breaches)} SLA breach{'es' if len(breaches) != 1 else ''}, {sla['file']})"
                if sla["file"]
                else " (no SLA file)"
            )
        )
    t = result["totals"]
    lines.append(
        f"{t['exchanges']:,} exchanges, success {_pct(t['success_rate'])}, {t['failures']:,} failed, "
        f"{t['silences']} silence(s), {t['failovers']} failover(s)"
    )
    lines.append("")
    header = (
        f"{'channel':<16} {'exchanges':>10} {'/hour':>8} {'success':>9} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'p99 ms':>8} {'sync p95 s':>10} {'silent':>6} {'failover':>8}"
    )
    lines += [header, "-" * len(header)]
    for ch in result["channels"]:
        lat, sync = ch["latency_ms"], ch["sync_delay_s"]
        lines.append(
            f"{ch['channel'][:16]:<16} {ch['exchanges']:>10,} {_fmt(ch['per_hour']['mean']):>8} "
            f"{_pct(ch['success_rate']):>9} {_fmt(lat['p50']):>8} {_fmt(lat['p95']):>8} "
            f"{_fmt(lat['p99']):>8} {_fmt(sync['p95']):>10} {len(ch['silences']):>6} "
            f"{ch['failover_count']:>8}"
        )
        if ch.get("change"):
            c = ch["change"]
            parts = [
                f"volume {_trend(c, 'exchanges_pct')[0] or '–'}",
                f"success {_trend(c, 'success_rate_points')[0] or '–'}",
                f"p95 {_trend(c, 'p95_pct', 'down')[0] or '–'}",
            ]
            lines.append(f"{'':<16}   vs previous period: " + ", ".join(parts))
    breaches = result["sla"]["breaches"]
    if breaches:
        lines += ["", "SLA breaches:"] + [f"  - {b['text']}" for b in breaches]
    tops = [(ch["channel"], f) for ch in result["channels"] for f in ch["failures_top"][:3]]
    if tops:
        lines += ["", "Top failures (example: harness capture show ID):"]
        for name, f in tops:
            code = f" {f['code']}" if f["code"] else ""
            what = f"{f['outcome']}{code} {f['reason'] or ''}"
            lines.append(f"  {name}: {f['count']:,} x {what} (e.g. #{f['example_id']})")
    gaps = [(ch["channel"], g) for ch in result["channels"] for g in ch["silences"]]
    if gaps:
        lines += ["", "Silences in business hours:"]
        lines += [
            f"  {n}: {g['from_local']} to {g['to_local']} ({g['minutes']:.0f} min)" for n, g in gaps[:20]
        ]
        if len(gaps) > 20:
            lines.append(f"  ... and {len(gaps) - 20} more (see the HTML or JSON report)")
    events = [(ch["channel"], e) for ch in result["channels"] for e in ch["failovers"]]
    if events:
        lines += ["", "Upstream changes:"]
        lines += [f"  {n}: {e['at_local']} {e['kind']} {e['from']} -> {e['to']}" for n, e in events[:20]]
    return "\n".join(lines) + "\n"
