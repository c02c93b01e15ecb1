"""The certification report: JSON, JUnit XML and an offline HTML page an engineer signs.

Every format leads with the verdict (PASS, FAIL, INCOMPLETE), then says what was certified (the spec and
its version, the target, when, with which harness), the coverage matrix of operations by checks, the
evidence of every failure (request, reply, finding, how to reproduce it) and a sign-off block. The HTML
embeds its styles and an inline SVG chart and fetches nothing. Until identifiers in captured and sent
traffic are masked, each report says that it holds patient data.
"""

from __future__ import annotations

import json
from typing import Any
from xml.sax.saxutils import escape as xml_escape
from xml.sax.saxutils import quoteattr

from harness.certify.cases import ALL_CHECKS
from harness.certify.results import FAILED, NOT_RUN, PASSED, WAIVED, Run
from harness.report.charts import COLOURS, Bar, bar_chart

PATIENT_DATA = (
    "This report contains patient data: the requests and replies in its evidence carry names, 身份证 "
    "numbers and other identifiers as they were sent. Store and share it as you would patient records."
)
SIGN_OFF = ("engineer", "role", "date", "signature", "remarks")
SHOWN_BYTES = 6000
"""How much of a request or reply the HTML shows (the JSON report keeps what was recorded)."""


def verdict_line(run: Run) -> str:
    s = run.summary()
    head = f"{s['verdict']}: {s['family']} spec {s['spec']} against {s['target']}"
    return (
        f"{head}: {s['checks']} checks on {s['operations']} operation(s) and {s['flows']} flow(s): "
        f"{s['passed']} passed, {s['failed']} failed, {s['skipped']} not run, {s['waived']} waived "
        f"({s['cases']} cases)"
    )


def document(run: Run) -> dict[str, Any]:
    """Everything a report shows, as plain data (the JSON report)."""
    return {
        "summary": run.summary(),
        "interface": {
            "family": run.interface.family,
            "title": run.interface.title,
            "path": str(run.interface.path),
            "version": run.interface.version,
            "transport": run.interface.transport,
            "rejection": run.interface.rejection,
            "files": [str(f) for f in run.interface.files],
        },
        "command": run.command,
        "checks": {c: ALL_CHECKS[c] for c in run.checks},
        "rows": [
            {"id": r.id, "name": r.name, "group": r.group, "label": r.label, "flow": r.flow}
            for r in run.rows.values()
        ],
        "cells": [c.as_dict() for c in run.cells.values()],
        "waivers": run.waivers,
        "notes": list(run.notes),
        "options": dict(run.options),
        "patient_data": PATIENT_DATA,
        "sign_off": dict.fromkeys(SIGN_OFF),
    }


def render_json(run: Run) -> str:
    return json.dumps(document(run), ensure_ascii=False, indent=1) + "\n"


def render_junit(run: Run) -> str:
    """One test case per operation and check: failed cells fail, not-run and waived ones are skipped."""
    s = run.summary()
    name = f"certify {s['family']} {s['spec']}"
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<testsuites name={quoteattr(name)} tests="{s["checks"]}" failures="{s["failed"]}">',
        f'<testsuite name={quoteattr(name)} tests="{s["checks"]}" failures="{s["failed"]}" errors="0" '
        f'skipped="{s["skipped"] + s["waived"]}" timestamp={quoteattr(s["started"])}>',
        "<properties>"
        + "".join(
            f"<property name={quoteattr(k)} value={quoteattr(str(v))}/>"
            for k, v in (
                ("verdict", s["verdict"]),
                ("spec_version", s["spec_version"]),
                ("target", s["target"]),
                ("seed", s["seed"]),
            )
        )
        + "</properties>",
    ]
    for cell in run.cells.values():
        out.append(f"<testcase classname={quoteattr(cell.operation)} name={quoteattr(cell.check)}>")
        if cell.status == FAILED:
            first = cell.evidence[0] if cell.evidence else None
            message = f"{cell.failures} of {cell.cases} case(s) failed" + (
                f": {first.title}: {first.finding}" if first else ""
            )
            body = "\n\n".join(
                f"{e.title}\nconstraint: {e.constraint}\nfinding: {e.finding}\nreproduce: {e.reproduce}\n"
                f"request:\n{_clip(e.request)}\nreply:\n{_clip(e.reply)}"
                for e in cell.evidence
            )
            attrs = f"message={quoteattr(message)} type={quoteattr(cell.check)}"
            out.append(f"<failure {attrs}>{xml_escape(body)}</failure>")
        elif cell.status in (NOT_RUN, WAIVED):
            why = f"waived ({cell.waived_status}): {cell.reason}" if cell.status == WAIVED else cell.reason
            out.append(f"<skipped message={quoteattr(why)}/>")
        elif cell.seen:
            out.append(f"<system-out>{xml_escape(f'{cell.cases} case(s); e.g. {cell.seen}')}</system-out>")
        out.append("</testcase>")
    out += ["</testsuite>", "</testsuites>"]
    return "\n".join(out) + "\n"


def _clip(text: str, limit: int = SHOWN_BYTES) -> str:
    return text if len(text) <= limit else text[:limit] + f"\n… ({len(text) - limit} more characters)"


# -- HTML ----------------------------------------------------------------------------------------
def check_chart(run: Run) -> str:
    """Per check: the share of its cells that passed (failed ones in red)."""
    bars = []
    for check in run.checks:
        cells = [c for (_, ch), c in run.cells.items() if ch == check]
        passed = sum(c.status == PASSED for c in cells)
        failed = sum(c.status == FAILED for c in cells)
        rate = 100.0 * passed / len(cells) if cells else 0.0
        colour = COLOURS["error"] if failed else COLOURS["ok"] if passed == len(cells) else COLOURS["warning"]
        text = f"{passed}/{len(cells)}" + (f", {failed} failed" if failed else "")
        bars.append(Bar(check, rate, text, colour, f"{check}: {ALL_CHECKS[check]}"))
    return bar_chart(bars, title="checks passed, by kind", css_class="by-check", maximum=100.0)


SYMBOLS = {PASSED: "✓", FAILED: "✗", NOT_RUN: "–", WAIVED: "W"}


def matrix(run: Run) -> list[dict[str, Any]]:
    """The matrix's rows; rows without a cell (operations a capture did not hold) are left out."""
    rows = []
    for row in run.rows.values():
        if not any(op == row.id for op, _ in run.cells):
            continue
        cells = []
        for check in run.checks:
            cell = run.cells.get((row.id, check))
            if cell is None:
                cells.append(None)
                continue
            if cell.status == FAILED:
                text, tip = f"✗ {cell.failures}", f"{cell.failures} of {cell.cases} case(s) failed"
            elif cell.status == PASSED:
                text, tip = "✓", f"{cell.cases} case(s) passed" + (f"; e.g. {cell.seen}" if cell.seen else "")
            elif cell.status == WAIVED:
                text, tip = "W", f"waived ({cell.waived_status}) by {cell.waived_by}: {cell.reason}"
            else:
                text, tip = "–", f"not run: {cell.reason}"
            cells.append({"status": cell.status, "text": text, "tip": tip, "anchor": _anchor(row.id, check)})
        rows.append({"row": row, "cells": cells})
    return rows


def _anchor(row: str, check: str) -> str:
    return "f-" + "".join(ch if ch.isalnum() else "-" for ch in f"{row}-{check}")


def _template():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("harness.certify", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["clip"] = _clip
    return env.get_template("report.html")


def render_html(run: Run) -> str:
    summary = run.summary()
    failed = run.failed_cells()
    others = [c for c in run.cells.values() if c.status in (NOT_RUN, WAIVED)]
    return _template().render(
        s=summary,
        run=run,
        interface=run.interface,
        checks=[(c, ALL_CHECKS[c]) for c in run.checks],
        matrix=matrix(run),
        failed=failed,
        others=others,
        chart=check_chart(run),
        patient_data=PATIENT_DATA,
        anchor=_anchor,
        descriptions=ALL_CHECKS,
        sign_off=SIGN_OFF,
    )
