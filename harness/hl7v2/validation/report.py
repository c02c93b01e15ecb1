"""Validation reports: a summary, and the run rendered as text, JSON, JUnit XML or offline HTML.

Pure functions over plain dicts (a Result's `as_dict()`), so worker processes can hand results back
as dicts and every format renders the same data. The HTML embeds its styles and fetches nothing.
"""

from __future__ import annotations

import json
from collections import Counter
from xml.sax.saxutils import escape as xml_escape
from xml.sax.saxutils import quoteattr


class Summary:
    """Counts by finding code and by message type, built incrementally as results arrive."""

    def __init__(self) -> None:
        self.messages = 0
        self.valid = 0
        self.severities: Counter[str] = Counter()
        self.by_code: dict[str, dict] = {}
        self.by_type: dict[str, dict] = {}

    def add(self, msg: dict) -> None:
        self.messages += 1
        self.valid += bool(msg["valid"])
        mtype = msg.get("message_type") or "(none)"
        t = self.by_type.setdefault(mtype, {"messages": 0, "invalid": 0, "errors": 0, "warnings": 0})
        t["messages"] += 1
        t["invalid"] += not msg["valid"]
        seen: set[str] = set()
        for f in msg["findings"]:
            sev = f["severity"]
            self.severities[sev] += 1
            t["errors"] += sev == "error"
            t["warnings"] += sev == "warning"
            c = self.by_code.setdefault(f["code"], {"severity": sev, "count": 0, "messages": 0})
            c["count"] += 1
            if f["code"] not in seen:
                seen.add(f["code"])
                c["messages"] += 1

    def as_dict(self, elapsed: float | None = None) -> dict:
        out = {
            "messages": self.messages,
            "valid": self.valid,
            "invalid": self.messages - self.valid,
            "errors": self.severities["error"],
            "warnings": self.severities["warning"],
            "info": self.severities["info"],
            "by_code": dict(sorted(self.by_code.items(), key=lambda kv: (-kv[1]["count"], kv[0]))),
            "by_message_type": dict(sorted(self.by_type.items())),
        }
        if elapsed is not None:
            out["elapsed_s"] = round(elapsed, 3)
            out["messages_per_s"] = round(self.messages / elapsed, 1) if elapsed > 0 else None
        return out


def _label(msg: dict) -> str:
    where = f"{msg['source']}#{msg['index']}" if msg.get("source") else f"#{msg['index']}"
    mtype = msg.get("message_type") or "?"
    ctl = msg.get("control_id") or "-"
    return f"{where} {mtype} {ctl}"


def render_text(messages: list[dict], summary: dict, *, show_info: bool = False, max_listed: int = 50) -> str:
    lines: list[str] = []
    listed = 0
    hidden = 0
    for msg in messages:
        shown = [f for f in msg["findings"] if show_info or f["severity"] != "info"]
        if not shown:
            continue
        if listed >= max_listed:
            hidden += 1
            continue
        listed += 1
        lines.append(f"{'INVALID' if not msg['valid'] else 'valid  '} {_label(msg)}")
        for f in shown:
            parts = []
            if f.get("expected") is not None:
                parts.append(f"expected {f['expected']}")
            if f.get("actual") is not None:
                parts.append(f"got {f['actual']}")
            extra = f"  ({', '.join(parts)})" if parts else ""
            lines.append(f"  {f['severity']:7} {f['code']:30} {f['location']:16} {f['message']}{extra}")
    if hidden:
        lines.append(
            f"... {hidden} more message(s) with findings not listed (use --format json or --max-listed)"
        )
    lines.append("")
    lines.append(
        f"{summary['messages']} message(s): {summary['valid']} valid, {summary['invalid']} invalid; "
        f"{summary['errors']} error(s), {summary['warnings']} warning(s), {summary['info']} info"
        + (f"; {summary['messages_per_s']} msg/s" if summary.get("messages_per_s") else "")
    )
    if summary["by_code"]:
        lines.append("by code:")
        for code, c in summary["by_code"].items():
            lines.append(f"  {c['severity']:7} {code:34} {c['count']:>8} in {c['messages']} message(s)")
    if summary["by_message_type"]:
        lines.append("by message type:")
        for mtype, t in summary["by_message_type"].items():
            lines.append(
                f"  {mtype:16} {t['messages']:>8} message(s) {t['invalid']:>8} invalid "
                f"{t['errors']:>8} error(s) {t['warnings']:>8} warning(s)"
            )
    return "\n".join(lines) + "\n"


def render_json(messages: list[dict], summary: dict) -> str:
    """One message per line (the C encoder: a 100,000-message report renders in about a second)."""
    dump = json.JSONEncoder(ensure_ascii=False).encode
    body = ",\n".join(dump(m) for m in messages)
    return f'{{"messages": [\n{body}\n],\n"summary": {json.dumps(summary, ensure_ascii=False, indent=1)}}}\n'


def render_junit(messages: list[dict], summary: dict, name: str = "hl7v2-validation") -> str:
    """One testcase per message; errors fail it, warnings go to system-out."""
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<testsuites name={quoteattr(name)} tests="{summary["messages"]}" failures="{summary["invalid"]}">',
        f'<testsuite name={quoteattr(name)} tests="{summary["messages"]}" failures="{summary["invalid"]}" '
        f'errors="0" skipped="0" time="{summary.get("elapsed_s", 0)}">',
    ]
    for msg in messages:
        classname = msg.get("message_type") or "unknown"
        case = f"{msg.get('source') or 'message'}#{msg['index']} {msg.get('control_id') or ''}".strip()
        out.append(f"<testcase classname={quoteattr(classname)} name={quoteattr(case)}>")
        errors = [f for f in msg["findings"] if f["severity"] == "error"]
        others = [f for f in msg["findings"] if f["severity"] != "error"]
        if errors:
            body = "\n".join(f"{f['code']} {f['location']}: {f['message']}" for f in errors)
            out.append(
                f"<failure message={quoteattr(f'{len(errors)} error(s): ' + errors[0]['message'])} "
                f"type={quoteattr(errors[0]['code'])}>{xml_escape(body)}</failure>"
            )
        if others:
            body = "\n".join(f"{f['severity']} {f['code']} {f['location']}: {f['message']}" for f in others)
            out.append(f"<system-out>{xml_escape(body)}</system-out>")
        out.append("</testcase>")
    out.append("</testsuite>")
    out.append("</testsuites>")
    return "\n".join(out) + "\n"


_HTML = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>HL7 v2 validation: {{ s.invalid }} invalid of {{ s.messages }}</title>
<style>
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI","Microsoft YaHei",sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;
vertical-align:top}th{background:#f3f3f3}td.n{text-align:right}
.error{color:#b00020;font-weight:600}.warning{color:#a15c00}.info{color:#555}
.ok{color:#1b7f3b}.bad{color:#b00020}details{margin:.3em 0}summary{cursor:pointer}
code{font-family:ui-monospace,Consolas,monospace;font-size:.95em}
.cards span{display:inline-block;border:1px solid #ddd;border-radius:6px;padding:.5em 1em;margin-right:.6em}
</style></head><body>
<h1>HL7 v2 validation report</h1>
<p>{{ title }}</p>
<div class="cards"><span>{{ s.messages }} messages</span><span class="ok">{{ s.valid }} valid</span>
<span class="bad">{{ s.invalid }} invalid</span><span class="error">{{ s.errors }} errors</span>
<span class="warning">{{ s.warnings }} warnings</span><span class="info">{{ s.info }} info</span>
{% if s.messages_per_s %}<span>{{ s.messages_per_s }} msg/s</span>{% endif %}</div>
<h2>By finding code</h2>
<table><tr><th>severity</th><th>code</th><th>findings</th><th>messages</th></tr>
{% for code, c in s.by_code.items() %}<tr><td class="{{ c.severity }}">{{ c.severity }}</td>
<td><code>{{ code }}</code></td>
<td class="n">{{ c.count }}</td><td class="n">{{ c.messages }}</td></tr>{% endfor %}</table>
<h2>By message type</h2>
<table><tr><th>type</th><th>messages</th><th>invalid</th><th>errors</th><th>warnings</th></tr>
{% for t, c in s.by_message_type.items() %}<tr><td>{{ t }}</td><td class="n">{{ c.messages }}</td>
<td class="n">{{ c.invalid }}</td><td class="n">{{ c.errors }}</td><td class="n">{{ c.warnings }}</td></tr>
{% endfor %}
</table>
<h2>Messages with findings{% if hidden %} (first {{ listed|length }};
{{ hidden }} more in the JSON report){% endif %}</h2>
{% for m in listed %}<details{% if not m.valid %} open{% endif %}><summary>
<span class="{{ 'ok' if m.valid else 'bad' }}">{{ 'valid' if m.valid else 'INVALID' }}</span>
<code>{{ m.source }}#{{ m.index }}</code> {{ m.message_type or '?' }} {{ m.control_id or '' }}
({{ m.findings|length }} findings)</summary>
<table><tr><th>severity</th><th>code</th><th>location</th><th>message</th><th>expected</th><th>actual</th></tr>
{% for f in m.findings %}<tr><td class="{{ f.severity }}">{{ f.severity }}</td>
<td><code>{{ f.code }}</code></td>
<td><code>{{ f.location }}</code></td><td>{{ f.message }}</td><td>{{ f.expected or '' }}</td>
<td><code>{{ f.actual or '' }}</code></td></tr>{% endfor %}</table></details>
{% endfor %}
</body></html>
"""


def render_html(messages: list[dict], summary: dict, title: str = "", max_listed: int = 2000) -> str:
    import jinja2

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    with_findings = [m for m in messages if m["findings"]]
    listed = with_findings[:max_listed]
    return env.from_string(_HTML).render(
        s=summary, title=title, listed=listed, hidden=len(with_findings) - len(listed)
    )
