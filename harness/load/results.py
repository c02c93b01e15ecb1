"""What a run measured, as the summary every report reads (sans-IO: plain data in, plain data out).

The master's recorder (every worker's requests merged) and the plan give: totals and percentiles,
one row per request name, failures by reason, the timeline with the target beside what was achieved,
the open model's arrivals, backlog and start delays, and the plan's thresholds judged.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from harness.load import profile as plans
from harness.load import thresholds as sla
from harness.load.timeline import Recorder, histogram_percentile

__all__ = ["results"]


def results(
    plan: Mapping[str, Any],
    rec: Recorder,
    started: float,
    ended: float | None = None,
    *,
    workers: int = 1,
    interrupted: bool = False,
    notes: list[str] | None = None,
) -> dict[str, Any]:
    """The run's summary; `started`/`ended` are epoch seconds (ended None: now)."""
    end = ended or time.time()
    ran = max(1e-9, end - started)
    seconds = plan["duration_s"] if not interrupted else min(ran, plan["duration_s"])
    totals = rec.total().summary(seconds)
    by_name = {}
    for name in rec.names():
        by_name[name] = {"kind": rec.kinds.get(name, ""), **rec.total([name]).summary(seconds)}
    out: dict[str, Any] = {
        "profile": plan["profile"],
        "description": plan.get("description", ""),
        "model": plan["model"],
        "target": plans.targets_text(plan),
        "targets": {k: t["target"] for k, t in plan["traffic"].items()},
        "left_out": plan.get("left_out", {}),
        "run_tag": plan["run_tag"],
        "started_at": started,
        "ended_at": end,
        "duration_s": seconds,
        "ran_s": ran,
        "planned_duration_s": plan["duration_s"],
        "interrupted": interrupted,
        "peak": plan["peak"],
        "scale": plan["scale"],
        "shape": plan["shape"],
        "workers": workers,
        "totals": totals,
        "requests": totals["requests"],
        "failures": totals["failures"],
        "rate": totals.get("rate", 0.0),
        "p50_ms": totals["p50_ms"],
        "p95_ms": totals["p95_ms"],
        "p99_ms": totals["p99_ms"],
        "by_name": by_name,
        "errors": [
            {"name": n, "reason": r, "count": c}
            for (n, r), c in sorted(rec.errors.items(), key=lambda kv: (-kv[1], kv[0]))
        ],
        "late_acks": rec.late_acks,
        "interval_s": rec.interval,
        "timeline": _timeline(plan, rec, started, end),
        "notes": list(plan.get("notes", [])) + list(notes or []),
        "capture": plan.get("capture"),
        "open": None,
        "proxy": None,
    }
    if plan["model"] == "open":
        op = rec.open_total()
        out["open"] = {
            "target_requests": plan.get("expected_requests"),
            "scheduled": op.scheduled,
            "started": op.started,
            "backlog_max": op.backlog_max,
            "wait_p50_ms": histogram_percentile(op.wait, 50),
            "wait_p95_ms": histogram_percentile(op.wait, 95),
            "wait_p99_ms": histogram_percentile(op.wait, 99),
            "target_rate": op.scheduled / seconds if seconds else 0.0,
            "achieved_rate": op.started / seconds if seconds else 0.0,
        }
    rules = [sla.Threshold.from_json(t) for t in plan.get("thresholds", [])]
    judged = sla.evaluate(rules, out)
    out["thresholds"] = judged
    out["breached"] = [t["text"] for t in sla.breached(judged)]
    out["passed"] = not out["breached"] and not interrupted
    return out


def _timeline(plan: Mapping[str, Any], rec: Recorder, started: float, end: float) -> list[dict[str, Any]]:
    rows = rec.series(started, end)
    curve = plans.curve(plan)
    for row in rows:
        t = row["at"] + rec.interval / 2 - started
        row["target"] = curve.target(t) if t <= plan["duration_s"] else 0.0
        row["label"] = curve.label_at(min(t, plan["duration_s"]))
    return rows
