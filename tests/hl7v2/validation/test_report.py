"""Report rendering: summaries, and text/JSON/JUnit/HTML from the same result dicts."""

from __future__ import annotations

import json

from lxml import etree

from harness.hl7v2.validation import report
from harness.hl7v2.validation.validator import validate

BAD = (
    "MSH|^~\\&|A|B|C|D|20240301083000||ADT^A01^ADT_A01|<script>x</script>|P|2.5\r"
    "EVN|A01|20240301083000\rPID|1||P1^^^H^MR||ZHANG^SAN||19801301|M\rPV1|1|I\r"
)
GOOD = BAD.replace("19801301", "19800101").replace("<script>x</script>", "M2")


def results():
    return [
        validate(GOOD.encode()).as_dict() | {"source": "f.hl7", "index": 0},
        validate(BAD.encode()).as_dict() | {"source": "f.hl7", "index": 1},
    ]


def summary(msgs):
    s = report.Summary()
    for m in msgs:
        s.add(m)
    return s.as_dict(elapsed=0.5)


def test_summary_counts_by_code_and_type():
    msgs = results()
    s = summary(msgs)
    assert (s["messages"], s["valid"], s["invalid"], s["errors"]) == (2, 1, 1, 1)
    assert s["by_code"]["HL7-DATATYPE-DTM"] == {"severity": "error", "count": 1, "waived": 0, "messages": 1}
    assert s["by_message_type"]["ADT^A01"] == {
        "messages": 2,
        "invalid": 1,
        "failed": 1,
        "errors": 1,
        "warnings": 0,
        "waived": 0,
    }
    assert (s["verdict"], s["failed"], s["fail_on"]) == ("FAIL", 1, "error")
    assert s["messages_per_s"] == 4.0


def test_every_format_renders_the_same_findings():
    msgs = results()
    s = summary(msgs)
    text = report.render_text(msgs, s)
    assert "INVALID f.hl7#1" in text and "3:PID-7.1" in text and "valid   f.hl7#0" not in text
    doc = json.loads(report.render_json(msgs, s))
    assert doc["messages"][1]["findings"][0]["code"] == "HL7-DATATYPE-DTM" and doc["summary"] == s
    junit = etree.fromstring(report.render_junit(msgs, s).encode())
    assert junit.get("tests") == "2" and junit.get("failures") == "1"
    assert junit.find(".//testcase[2]/failure").get("type") == "HL7-DATATYPE-DTM"
    html = report.render_html(msgs, s, title="t")
    assert "<script>x</script>" not in html and "&lt;script&gt;" in html
    assert "HL7-DATATYPE-DTM" in html


def test_text_listing_is_bounded():
    msgs = [results()[1] | {"index": i} for i in range(10)]
    text = report.render_text(msgs, summary(msgs), max_listed=3)
    assert text.count("INVALID") == 3 and "7 more message(s)" in text
