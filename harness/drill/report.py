"""The drill report: JSON (the data as is), offline HTML with the timeline and a sign-off block, and text."""

from __future__ import annotations

import json
from typing import Any

from harness.report.charts import COLOURS, SERIES_COLOURS, Marker, Series, time_chart
from harness.report.page import render

UPSTREAM_COLOURS = ("#2f6db5", "#c77700", "#7b3fa0", "#0f7c80")


def render_json(report: dict[str, Any]) -> str:
    return json.dumps(report, ensure_ascii=False, indent=1) + "\n"


def render_html(report: dict[str, Any]) -> str:
    return render("drill.html", d=report, timeline=_timeline_chart(report), seconds=_seconds)


def _timeline_chart(report: dict[str, Any]) -> str:
    t = report["timeline"]
    series = []
    if t["by_upstream"]:
        roles = {s["upstream"]: s["role"] for s in report["served_by"]}
        for i, (upstream, counts) in enumerate(t["by_upstream"].items()):
            colour = UPSTREAM_COLOURS[i] if i < len(UPSTREAM_COLOURS) else SERIES_COLOURS[-1]
            name = f"{roles.get(upstream, '')} {upstream}".strip()
            series.append(Series(name, counts, colour, style="bar"))
    else:
        series.append(Series("acknowledged", t["acknowledged"], COLOURS["ok"], style="bar"))
    series.append(Series("failed attempts", t["failed"], COLOURS["error"], style="bar"))
    markers = []
    outage = report["outage"]
    if outage:
        end = outage["to_epoch"] if outage["to_epoch"] is not None else t["start"] + len(t["failed"])
        markers.append(
            Marker(outage["from_epoch"], f"outage {_seconds(outage['seconds'])}", COLOURS["error"], until=end)
        )
    switch = report["switch"]
    if switch["at_s"] is not None:
        markers.append(Marker(t["start"] + switch["at_s"], "switch", "#1f2328"))
    return time_chart(
        series,
        start=t["start"],
        step_s=t["step_s"],
        title=f"messages per {t['step_s']:g} s",
        css_class="timeline",
        markers=markers,
        width=1000,
        height=260,
    )


def _seconds(value: float | None) -> str:
    if value is None:
        return "not ended"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def render_text(report: dict[str, Any]) -> str:
    run, sw, o = report["run"], report["switch"], report["outage"]
    switch = f"switch: {sw['command'] or 'by hand'}"
    if sw["at_s"] is not None:
        switch += f" at +{sw['at_s']:.2f} s"
    if sw["exit_code"] is not None:
        switch += f", exit {sw['exit_code']}"
    outage = f"outage window {_seconds(o['seconds']) if o else 'none (no failed attempt)'}"
    if o:
        results = ", ".join(f"{k} {v}" for k, v in o["results"].items())
        outage += f" from {o['from']} ({o['failed_attempts']} failed attempts: {results})"
    recovery = _seconds(report["recovery_s"]) if report["recovery_s"] is not None else "–"
    lines = [
        f"Switchover drill (主备切换演练) {run['run_id']}: {report['verdict']}",
        f"channel {run['channel']} via {run['target']}, upstreams {', '.join(run['upstreams'])}",
        f"{run['started_local']} to {run['finished_local']}: {run['rate']:g} msg/s for {run['duration_s']:g} "
        f"s, {run['patients']} patients, {run['connections']} connection(s)",
        switch,
        "",
        f"sent {report['sent']}"
        + (f" ({report['not_sent']} not sent)" if report["not_sent"] else "")
        + f", acknowledged {report['acknowledged']}, rejected by the engine "
        f"{report['rejected_by_engine']}, unacknowledged {report['unacknowledged']}",
        f"lost {report['lost']}, duplicated {report['duplicated']}, reordered {report['reordered']} "
        f"(evidence: {report['evidence']})",
        outage,
        f"recovery {recovery} after the switch",
    ]
    for s in report["served_by"]:
        lines.append(
            f"  {s['role']} {s['upstream']}: {s['before_switch']} before the switch, "
            f"{s['after_switch']} after"
        )
    for reason in report["reasons"]:
        lines.append(f"FAIL: {reason}")
    for note in report["notes"]:
        lines.append(f"note: {note}")
    return "\n".join(lines) + "\n"
