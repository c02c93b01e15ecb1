"""The exchange record: defaults, latency, and the JSON view the CLI and reports print."""

from __future__ import annotations

import json

import pytest

from harness.exchange import Exchange, iso_time, percentile, summarize


def test_defaults_are_independent_and_slotted():
    a, b = Exchange(channel="adt"), Exchange(channel="adt")
    a.notes.append("x")
    a.meta["k"] = 1
    assert b.notes == [] and b.meta == {}
    assert a.id is None and a.response is None and a.outcome == "ok"
    with pytest.raises(AttributeError):
        a.not_a_field = 1  # slots: a typo never silently adds a field


def test_finish_sets_latency_from_start():
    ex = Exchange(started_at=1000.0)
    ex.finish(1000.0125)
    assert ex.ended_at == 1000.0125
    assert ex.latency_ms == pytest.approx(12.5)
    clock_skew = Exchange(started_at=10.0)
    clock_skew.finish(9.0)
    assert clock_skew.latency_ms == 0.0


def test_iso_time_is_utc_with_milliseconds():
    assert iso_time(0) == "1970-01-01T00:00:00.000Z"
    assert iso_time(1764083412.5) == "2025-11-25T15:10:12.500Z"


def test_json_view_mllp():
    ex = Exchange(
        id=7,
        channel="adt",
        started_at=0.0,
        request="MSH|^~\\&|李\r".encode("gb18030"),
        response=b"MSH|...\rMSA|AE|1\r",
        outcome="nak",
        ack_code="AE",
        message_type="ADT^A01",
        control_id="1",
        charset="gb18030",
        fault={"id": "r1", "action": {"type": "nak", "code": "AE"}},
        notes=["nak by rule r1"],
    )
    ex.finish(0.002)
    view = ex.to_json()
    assert json.loads(json.dumps(view)) == view  # JSON-safe: no bytes leak into it
    assert view["id"] == 7 and view["started_at"] == "1970-01-01T00:00:00.000Z"
    assert view["latency_ms"] == 2.0 and view["fault"]["action"]["type"] == "nak"
    assert view["ack_code"] == "AE" and view["message_type"] == "ADT^A01" and view["kind"] == "hl7v2"
    assert "method" not in view and view["meta"] == {}


def test_json_view_http_adds_method_path_status():
    ex = Exchange(
        protocol="http",
        kind="medins",
        method="POST",
        path="/fsi/api/rsfComIfsService/callService",
        status=200,
        meta={"infno": "2207", "infcode": -1},
    )
    view = ex.to_json()
    assert (view["method"], view["status"]) == ("POST", 200)
    assert view["path"].endswith("callService") and view["meta"]["infno"] == "2207"
    assert view["ended_at"] is None and view["latency_ms"] is None


def test_percentile_interpolates_between_ranks():
    assert percentile([], 50) is None
    assert percentile([7.0], 99) == 7.0
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 0) == 1.0 and percentile(values, 100) == 100.0
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)


def test_summarize_counts_and_latency():
    rows = []
    for i in range(10):
        ex = Exchange(channel="adt" if i < 8 else "lab", started_at=100.0 + i, message_type="ADT^A01")
        ex.finish(ex.started_at + (i + 1) / 1000)
        rows.append(ex)
    rows[3].outcome, rows[3].fault = "fault", {"id": "r1", "action": {"type": "delay", "ms": 5}}
    rows[4].outcome, rows[4].latency_ms, rows[4].message_type = "timeout", None, None
    summary = summarize(iter(rows))  # one pass over an iterator, as the store streams it
    assert summary["exchanges"] == 10
    assert summary["by_channel"] == {"adt": 8, "lab": 2}
    assert summary["by_outcome"] == {"ok": 8, "fault": 1, "timeout": 1}
    assert summary["by_message_type"] == {"ADT^A01": 9, "(none)": 1}
    assert summary["by_fault"] == {"delay": 1}
    assert summary["latency_ms"]["count"] == 9 and summary["latency_ms"]["max"] == pytest.approx(10.0)
    assert summary["latency_ms_by_channel"]["lab"]["p50"] == pytest.approx(9.5)
    assert summary["first"] == "1970-01-01T00:01:40.000Z" and summary["last"] == "1970-01-01T00:01:49.000Z"
    assert summarize([])["latency_ms"]["p99"] is None
