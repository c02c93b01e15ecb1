"""The load run's report: offline HTML with charts over time, CSV and JSON, all in the run's folder.

The HTML leads with the verdict (the thresholds, the breached ones named), then the run (profile, model,
targets, shape, workers), charts over time — achieved rate against the target, latency percentiles,
failures, and the open model's backlog or the closed model's users — the thresholds, one row per message
type (with the proxy's view beside it when the load went through `harness proxy`), and the failures by
reason. Styles and charts are inline; nothing is fetched, so it opens on a closed hospital network.
"""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from harness import __version__
from harness.report.charts import COLOURS, Series, line_chart

__all__ = ["render_html", "write_reports"]

BLUE, GREY, PURPLE, TEAL = "#2f6db5", "#6b7280", "#7c3aed", "#0f766e"


def _labels(summary: dict[str, Any]) -> list[str]:
    clock = bool((summary.get("shape") or {}).get("clock"))
    return [row["label"] if clock else f"{row['t']}s" for row in summary["timeline"]]


def _values(rows: list[dict], key: str) -> tuple[float | None, ...]:
    return tuple(row.get(key) for row in rows)


def charts(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """(caption, svg) for each chart over time."""
    rows = summary["timeline"]
    labels = _labels(summary)
    per = summary.get("interval_s", 1)
    out = []
    target_key = "target_rate" if summary["model"] == "open" else None
    rate = [Series("achieved", _values(rows, "rate"), BLUE)]
    if target_key:
        rate.append(Series("target", tuple(r.get("target") for r in rows), GREY, dashed=True))
    out.append(
        (
            f"Requests per second (per {per} s)",
            line_chart(rate, x_labels=labels, title="rate", css_class="rate", unit="/s"),
        )
    )
    latency = [
        Series("p50", _values(rows, "p50_ms"), COLOURS["ok"]),
        Series("p95", _values(rows, "p95_ms"), COLOURS["warning"]),
        Series("p99", _values(rows, "p99_ms"), COLOURS["error"]),
    ]
    out.append(
        (
            "Response time percentiles",
            line_chart(latency, x_labels=labels, title="latency", css_class="latency", unit=" ms"),
        )
    )
    out.append(
        (
            "Failures per second",
            line_chart(
                [Series("failures", _values(rows, "failure_rate"), COLOURS["error"])],
                x_labels=labels,
                title="failures",
                css_class="failures",
                unit="/s",
            ),
        )
    )
    if summary["model"] == "open":
        out.append(
            (
                "Backlog: arrivals due and waiting for a free connection",
                line_chart(
                    [Series("backlog", tuple(r.get("backlog", 0) for r in rows), PURPLE)],
                    x_labels=labels,
                    title="backlog",
                    css_class="backlog",
                ),
            )
        )
    else:
        out.append(
            (
                "Users",
                line_chart(
                    [
                        Series("users", _values(rows, "users"), TEAL),
                        Series("target", tuple(r.get("target") for r in rows), GREY, dashed=True),
                    ],
                    x_labels=labels,
                    title="users",
                    css_class="users",
                ),
            )
        )
    return out


def _template():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("harness.load", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["ms"] = lambda v: "–" if v is None else f"{v:,.0f} ms" if v >= 10 else f"{v:.1f} ms"
    env.filters["num"] = lambda v, digits=1: "–" if v is None else f"{v:,.{digits}f}"
    env.filters["pct"] = lambda v: "–" if v is None else f"{v * 100:.2f}%"
    env.filters["when"] = lambda v: datetime.fromtimestamp(v).strftime("%Y-%m-%d %H:%M:%S") if v else "–"
    return env.get_template("report.html")


def render_html(summary: dict[str, Any]) -> str:
    return _template().render(s=summary, charts=charts(summary), version=__version__)


TIMELINE_COLUMNS = (
    "t", "label", "requests", "failures", "rate", "target", "p50_ms", "p95_ms", "p99_ms", "users",
    "scheduled", "started", "backlog",
)  # fmt: skip
REQUEST_COLUMNS = (
    "name",
    "kind",
    "requests",
    "failures",
    "error_rate",
    "rate",
    "mean_ms",
    "p50_ms",
    "p90_ms",
    "p95_ms",
    "p99_ms",
    "max_ms",
)
PROXY_COLUMNS = ("captured", "upstream_p50_ms", "upstream_p95_ms", "upstream_p99_ms", "naks", "timeouts")


def write_reports(summary: dict[str, Any], folder: Path) -> dict[str, str]:
    """report.html, summary.json, timeline.csv, requests.csv and failures.csv in folder."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        name: folder / name
        for name in ("report.html", "summary.json", "timeline.csv", "requests.csv", "failures.csv")
    }
    summary["reports"] = {k: str(v) for k, v in paths.items()}
    with open(paths["timeline.csv"], "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(TIMELINE_COLUMNS)
        for row in summary["timeline"]:
            writer.writerow([_cell(row.get(c)) for c in TIMELINE_COLUMNS])
    proxy = (summary.get("proxy") or {}).get("by_name", {})
    with open(paths["requests.csv"], "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(REQUEST_COLUMNS + (PROXY_COLUMNS if proxy else ()))
        for name, row in sorted(summary["by_name"].items()):
            cells = [name] + [_cell(row.get(c)) for c in REQUEST_COLUMNS[1:]]
            if proxy:
                cells += [_cell((proxy.get(name) or {}).get(c)) for c in PROXY_COLUMNS]
            writer.writerow(cells)
    with open(paths["failures.csv"], "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(("name", "reason", "count"))
        for e in summary["errors"]:
            writer.writerow((e["name"], e["reason"], e["count"]))
    paths["summary.json"].write_text(json.dumps(summary, ensure_ascii=False, indent=1), encoding="utf-8")
    paths["report.html"].write_text(render_html(summary), encoding="utf-8")
    return summary["reports"]


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    return "" if value is None else value
