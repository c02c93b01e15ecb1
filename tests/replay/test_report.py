"""Pairing runs in a real store file and rendering the three reports."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from harness.exchange import Exchange
from harness.replay.report import collect, latency_svg, parse_run_ref, render_html, render_json, render_junit
from harness.store import Store
from tests.messages import ack_for, adt


def ack(code, ctl, ts="20261125010203"):
    return ack_for(ctl, code, ts=ts, message_type="ACK^A01^ACK", sender=("HC", "H"), receiver=("HIS", "H"))


def req(ctl, patient="P1"):
    hosts = {"sender": ("HIS", "H"), "receiver": ("HC", "H")}
    return adt(ctl, pid3=patient, name="", evn=False, ts="20261124", **hosts)


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "s.db") as s:
        yield s


def original(s, ctl, code="AA", outcome="ok", latency=3.0):
    ex = Exchange(channel="adt", request=req(ctl), response=ack(code, ctl) if code else None, outcome=outcome,
                  ack_code=code, message_type="ADT^A01", control_id=ctl, latency_ms=latency)  # fmt: skip
    return s.add(ex)


def replay(s, run_id, oid, ctl, new_ctl, code, ts="20261126000000", outcome="ok", latency=1.0):
    meta = {"replay": {"item": f"x{oid}", "original_control_id": ctl, "source": f"exchange {oid}"}}
    ex = Exchange(channel="adt", request=req(new_ctl), response=ack(code, new_ctl, ts) if code else None,
                  outcome=outcome, ack_code=code, message_type="ADT^A01", control_id=new_ctl, run_id=run_id,
                  original_id=oid, latency_ms=latency,
                  meta=meta)  # fmt: skip
    return s.add(ex)


def test_collect_classifies_latest_attempt_and_unsent(store):
    o1 = original(store, "M1")
    o2 = original(store, "M2")
    o3 = original(store, "M3", code=None, outcome="timeout")
    o4 = original(store, "M4")
    run = store.create_run("replay", {"target": "127.0.0.1:1"})
    replay(store, run, o1, "M1", "R-1", "AA")
    replay(store, run, o2, "M2", "R-2", None, outcome="timeout")  # first attempt: no reply
    replay(store, run, o2, "M2", "R-2", "AE")  # resumed attempt
    replay(store, run, o3, "M3", "R-3", "AA")
    replay(store, run, o4, "M4", "R-4", None, outcome="timeout")
    store.finish_run(run, summary={"selected": 5})
    report = collect(store, "capture", run)
    by_id = {r.original.control_id: r.comparison for r in report.results}
    assert by_id["M1"].classification == "equivalent"
    assert by_id["M2"].classification == "new_error"
    assert by_id["M3"].classification == "different" and by_id["M3"].recovered
    assert by_id["M4"].classification == "missing"
    s = report.summary()
    assert (s["selected"], s["sent"], s["recovered"], s["ok"]) == (5, 4, 1, False)
    assert (s["equivalent"], s["new_error"], s["different"], s["missing"]) == (1, 1, 1, 1)

    # two runs compared with each other: ids mapped on both sides, an item only in A is missing in B
    run2 = store.create_run("replay", {"target": "127.0.0.1:2"})
    replay(store, run2, o1, "M1", "S-1", "AA", ts="20261127000000")
    report2 = collect(store, run, run2)
    by_id = {r.key: r.comparison.classification for r in report2.results}
    assert by_id == {f"x{o1}": "equivalent", f"x{o2}": "missing", f"x{o3}": "missing", f"x{o4}": "missing"}


def test_renderings(store):
    o1 = original(store, "M1")
    o2 = original(store, "M2")
    run = store.create_run("replay", {"target": "hc-test:2575"})
    replay(store, run, o1, "M1", "R-1", "AA")
    replay(store, run, o2, "M2", "R-2", "AR")
    report = collect(store, "capture", run)
    page = render_html(report)
    assert "<svg" in page and "<script src" not in page and "<link" not in page
    assert "hc-test:2575" in page and "new_error" in page and "AR" in page
    suite = ET.fromstring(render_junit(report).split("\n", 1)[1])
    cases = suite.findall("testcase")
    assert len(cases) == 2 and suite.get("failures") == "1"
    failed = [c for c in cases if c.find("failure") is not None]
    assert failed[0].find("failure").get("type") == "new_error"
    data = json.loads(render_json(report))
    assert data["summary"]["new_error"] == 1 and len(data["results"]) == 2
    assert {d["path"] for d in data["results"][0]["differences"]} >= {"MSA-2"}


def test_svg_with_no_values_and_run_refs():
    assert "No latencies" in latency_svg([], [], "a", "b")
    svg = latency_svg([1.0, 2.0, 50.0], [0.5], "capture", "run 2")
    assert svg.startswith("<svg") and "capture (n=3" in svg
    assert parse_run_ref("capture") == "capture" and parse_run_ref("0") == "capture"
    assert parse_run_ref("12") == 12
    with pytest.raises(ValueError, match="run id"):
        parse_run_ref("last")
