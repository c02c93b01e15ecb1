"""Validation reports: a summary, and the run rendered as text, JSON, JUnit XML or offline HTML.

Pure functions over plain dicts (a Result's `as_dict()`, marked by waivers.py), so worker processes can hand
results back as dicts and every format renders the same data. Every format leads with the verdict, lists
failing messages first and, within a message, errors first with repeated codes grouped and counted. The HTML
embeds its styles and inline SVG charts and fetches nothing; its size follows the findings, not the messages
(clean messages are counted, not listed).
"""

from __future__ import annotations

import json
from collections import Counter
from xml.sax.saxutils import escape as xml_escape
from xml.sax.saxutils import quoteattr

from harness.report.charts import COLOURS, Bar, bar_chart

SEVERITY_RANK = {"error": 0, "warning": 1, "info": 2}
FAIL_ON = ("error", "warning")
LOCATIONS_SHOWN = 12  # per grouped row in text/HTML; the JSON report has every one


def failed(msg: dict, fail_on: str = "error") -> bool:
    """A message fails the run when it has a finding, not waived, at or above the fail-on severity."""
    limit = SEVERITY_RANK[fail_on]
    return any(SEVERITY_RANK.get(f["severity"], 2) <= limit and not f.get("waived") for f in msg["findings"])


class Summary:
    """Counts by finding code and by message type, built incrementally as results arrive."""

    def __init__(self, fail_on: str = "error") -> None:
        self.fail_on = fail_on
        self.messages = 0
        self.valid = 0
        self.failed = 0
        self.waived = 0
        self.severities: Counter[str] = Counter()
        self.by_code: dict[str, dict] = {}
        self.by_type: dict[str, dict] = {}

    def add(self, msg: dict) -> None:
        self.messages += 1
        self.valid += bool(msg["valid"])
        bad = failed(msg, self.fail_on)
        self.failed += bad
        mtype = msg.get("message_type") or "(none)"
        t = self.by_type.setdefault(
            mtype, {"messages": 0, "invalid": 0, "failed": 0, "errors": 0, "warnings": 0, "waived": 0}
        )
        t["messages"] += 1
        t["invalid"] += not msg["valid"]
        t["failed"] += bad
        seen: set[str] = set()
        for f in msg["findings"]:
            sev = f["severity"]
            c = self.by_code.setdefault(f["code"], {"severity": sev, "count": 0, "waived": 0, "messages": 0})
            if f.get("waived"):
                self.waived += 1
                t["waived"] += 1
                c["waived"] += 1
            else:
                self.severities[sev] += 1
                t["errors"] += sev == "error"
                t["warnings"] += sev == "warning"
                c["count"] += 1
            if f["code"] not in seen:
                seen.add(f["code"])
                c["messages"] += 1

    def as_dict(self, elapsed: float | None = None) -> dict:
        out = {
            "verdict": "FAIL" if self.failed else "PASS",
            "fail_on": self.fail_on,
            "messages": self.messages,
            "valid": self.valid,
            "invalid": self.messages - self.valid,
            "failed": self.failed,
            "errors": self.severities["error"],
            "warnings": self.severities["warning"],
            "info": self.severities["info"],
            "waived": self.waived,
            "by_code": dict(
                sorted(
                    self.by_code.items(),
                    key=lambda kv: (SEVERITY_RANK.get(kv[1]["severity"], 2), -kv[1]["count"], kv[0]),
                )
            ),
            "by_message_type": dict(sorted(self.by_type.items())),
        }
        if elapsed is not None:
            out["elapsed_s"] = round(elapsed, 3)
            out["messages_per_s"] = round(self.messages / elapsed, 1) if elapsed > 0 else None
        return out


def shown_findings(msg: dict, min_severity: str = "info") -> list[dict]:
    limit = SEVERITY_RANK[min_severity]
    return [f for f in msg["findings"] if SEVERITY_RANK.get(f["severity"], 2) <= limit]


def grouped(findings: list[dict]) -> list[dict]:
    """Findings of one message as groups of one severity and code (waived ones apart), errors first."""
    groups: dict[tuple, dict] = {}
    for f in findings:
        waived = f.get("waived")
        key = (f["severity"], f["code"], waived["by"] if waived else None)
        g = groups.get(key)
        if g is None:
            g = groups[key] = {"severity": f["severity"], "code": f["code"], "waived": waived, "items": []}
        g["items"].append(f)
    return sorted(
        groups.values(),
        key=lambda g: (bool(g["waived"]), SEVERITY_RANK.get(g["severity"], 2), g["code"]),
    )


def ordered(messages: list[dict], fail_on: str, min_severity: str) -> list[tuple[dict, list[dict]]]:
    """Messages with findings to show, failing ones first (most errors first), then in input order."""
    listed = []
    for n, m in enumerate(messages):
        shown = shown_findings(m, min_severity)
        if not shown:
            continue
        errors = sum(1 for f in shown if f["severity"] == "error" and not f.get("waived"))
        listed.append((not failed(m, fail_on), -errors, n, m, shown))
    listed.sort(key=lambda row: row[:3])
    return [(m, shown) for *_, m, shown in listed]


def _label(msg: dict) -> str:
    where = f"{msg['source']}#{msg['index']}" if msg.get("source") else f"#{msg['index']}"
    mtype = msg.get("message_type") or "?"
    ctl = msg.get("control_id") or "-"
    return f"{where} {mtype} {ctl}"


def _locations(items: list[dict]) -> str:
    locs = [f["location"] for f in items]
    text = ", ".join(locs[:LOCATIONS_SHOWN])
    return text + (f" +{len(locs) - LOCATIONS_SHOWN} more" if len(locs) > LOCATIONS_SHOWN else "")


def _detail(f: dict) -> str:
    parts = []
    if f.get("expected") is not None:
        parts.append(f"expected {f['expected']}")
    if f.get("actual") is not None:
        parts.append(f"found {f['actual']}")
    return f"  ({', '.join(parts)})" if parts else ""


def verdict_line(summary: dict) -> str:
    s = summary
    return (
        f"{s['verdict']}: {s['messages']} message(s): {s['valid']} valid, {s['invalid']} invalid; "
        f"{s['failed']} fail on {s['fail_on']}; {s['errors']} error(s), {s['warnings']} warning(s), "
        f"{s['info']} info, {s['waived']} waived"
    )


def render_text(
    messages: list[dict],
    summary: dict,
    *,
    show_info: bool = False,
    max_listed: int = 50,
    min_severity: str | None = None,
) -> str:
    level = min_severity or ("info" if show_info else "warning")
    lines: list[str] = []
    rows = ordered(messages, summary.get("fail_on", "error"), level)
    for msg, shown in rows[:max_listed]:
        lines.append(f"{'INVALID' if not msg['valid'] else 'valid  '} {_label(msg)}")
        for g in grouped(shown):
            f = g["items"][0]
            n = len(g["items"])
            tag = "waived  " if g["waived"] else f"{g['severity']:7} "
            if n == 1:
                lines.append(f"  {tag}{g['code']:30} {f['location']:16} {f['message']}{_detail(f)}")
            else:
                lines.append(f"  {tag}{g['code']:30} x{n:<15} {_locations(g['items'])}")
                lines.append(f"  {'':8}{'':30} {'':16} e.g. {f['message']}{_detail(f)}")
            if g["waived"]:
                lines.append(
                    f"  {'':8}{'':30} {'':16} waived by {g['waived']['by']}: {g['waived']['reason']}"
                )
    if len(rows) > max_listed:
        lines.append(
            f"... {len(rows) - max_listed} more message(s) with findings not listed "
            f"(use --format json or --max-listed)"
        )
    lines.append("")
    lines.append(
        verdict_line(summary)
        + (f"; {summary['messages_per_s']} msg/s" if summary.get("messages_per_s") else "")
    )
    if summary["by_code"]:
        lines.append("by code:")
        for code, c in summary["by_code"].items():
            waived = f" (+{c['waived']} waived)" if c.get("waived") else ""
            lines.append(
                f"  {c['severity']:7} {code:34} {c['count']:>8} in {c['messages']} message(s){waived}"
            )
    if summary["by_message_type"]:
        lines.append("by message type:")
        for mtype, t in summary["by_message_type"].items():
            lines.append(
                f"  {mtype:16} {t['messages']:>8} message(s) {t['invalid']:>8} invalid "
                f"{t['errors']:>8} error(s) {t['warnings']:>8} warning(s)"
            )
    return "\n".join(lines) + "\n"


def render_json(messages: list[dict], summary: dict, run: dict | None = None) -> str:
    """One message per line (the C encoder: a 100,000-message report renders in about a second)."""
    dump = json.JSONEncoder(ensure_ascii=False).encode
    body = ",\n".join(dump(m) for m in messages)
    run_part = f'"run": {json.dumps(run, ensure_ascii=False)},\n' if run is not None else ""
    return (
        f'{{{run_part}"messages": [\n{body}\n],\n'
        f'"summary": {json.dumps(summary, ensure_ascii=False, indent=1)}}}\n'
    )


def render_junit(messages: list[dict], summary: dict, name: str = "hl7v2-validation") -> str:
    """One testcase per message; unwaived findings at the fail-on severity fail it, the rest: system-out."""
    fail_on = summary.get("fail_on", "error")
    limit = SEVERITY_RANK[fail_on]
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<testsuites name={quoteattr(name)} tests="{summary["messages"]}" failures="{summary["failed"]}">',
        f'<testsuite name={quoteattr(name)} tests="{summary["messages"]}" failures="{summary["failed"]}" '
        f'errors="0" skipped="0" time="{summary.get("elapsed_s", 0)}">',
    ]
    for msg in messages:
        classname = msg.get("message_type") or "unknown"
        case = f"{msg.get('source') or 'message'}#{msg['index']} {msg.get('control_id') or ''}".strip()
        out.append(f"<testcase classname={quoteattr(classname)} name={quoteattr(case)}>")
        failing = [
            f for f in msg["findings"] if SEVERITY_RANK.get(f["severity"], 2) <= limit and not f.get("waived")
        ]
        others = [f for f in msg["findings"] if f not in failing]
        if failing:
            body = "\n".join(f"{f['code']} {f['location']}: {f['message']}" for f in failing)
            out.append(
                f"<failure message={quoteattr(f'{len(failing)} finding(s): ' + failing[0]['message'])} "
                f"type={quoteattr(failing[0]['code'])}>{xml_escape(body)}</failure>"
            )
        if others:
            body = "\n".join(
                f"{'waived ' + f['severity'] if f.get('waived') else f['severity']} {f['code']} "
                f"{f['location']}: {f['message']}"
                + (f" [waived by {f['waived']['by']}: {f['waived']['reason']}]" if f.get("waived") else "")
                for f in others
            )
            out.append(f"<system-out>{xml_escape(body)}</system-out>")
        out.append("</testcase>")
    out.append("</testsuite>")
    out.append("</testsuites>")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------
# HTML


def code_chart(summary: dict, per_severity: dict[str, int] | None = None) -> str:
    """Findings by code: the most frequent codes of each severity (errors first), log scale."""
    limits = per_severity or {"error": 12, "warning": 8, "info": 4}
    rows = [(code, c) for code, c in summary["by_code"].items() if c["count"] or c.get("waived")]
    rows.sort(key=lambda kv: (SEVERITY_RANK.get(kv[1]["severity"], 2), -(kv[1]["count"] + kv[1]["waived"])))
    bars, left, taken = [], 0, Counter()
    for code, c in rows:
        total = c["count"] + c.get("waived", 0)
        if taken[c["severity"]] >= limits.get(c["severity"], 0):
            left += total
            continue
        taken[c["severity"]] += 1
        text = f"{c['count']}" + (f" +{c['waived']} waived" if c.get("waived") else "")
        colour = COLOURS[c["severity"]] if c["count"] else COLOURS["waived"]
        tip = f"{c['severity']} {code}: {text} in {c['messages']} message(s)"
        bars.append(Bar(code, total, text, colour, tip))
    if left:
        bars.append(Bar(f"{len(rows) - len(bars)} other codes", left, str(left), COLOURS["info"]))
    return bar_chart(bars, title="findings by code (log scale)", css_class="by-code", log=True)


def type_chart(summary: dict, top: int = 20) -> str:
    rows = sorted(summary["by_message_type"].items(), key=lambda kv: (-kv[1]["invalid"], kv[0]))
    bars = []
    for mtype, t in rows[:top]:
        rate = 100.0 * t["invalid"] / t["messages"] if t["messages"] else 0.0
        bars.append(
            Bar(
                mtype,
                rate,
                f"{rate:.0f}% ({t['invalid']}/{t['messages']})",
                COLOURS["error"] if t["invalid"] else COLOURS["ok"],
                f"{mtype}: {t['invalid']} of {t['messages']} invalid",
            )
        )
    return bar_chart(bars, title="invalid rate by message type", css_class="by-type", maximum=100.0)


def _template():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("harness.hl7v2.validation", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    return env.get_template("report.html")


def render_html(
    messages: list[dict],
    summary: dict,
    title: str = "",
    max_listed: int = 2000,
    *,
    run: dict | None = None,
    waivers: list[dict] | None = None,
    min_severity: str = "info",
) -> str:
    run = dict(run or {})
    run.setdefault("selection", title or "")
    run.setdefault("profiles", [])
    run.setdefault("waiver_files", [])
    run.setdefault("generated", "")
    run.setdefault("harness_version", "")
    run.setdefault("min_severity", min_severity)
    rows = ordered(messages, summary.get("fail_on", "error"), min_severity)
    listed = [(m, grouped(shown)) for m, shown in rows[:max_listed]]
    return _template().render(
        s=summary,
        run=run,
        rows=listed,
        hidden=len(rows) - len(listed),
        clean=len(messages) - len(rows),
        waivers=waivers or [],
        code_chart=code_chart(summary),
        type_chart=type_chart(summary),
        locations=_locations,
    )
