"""Inspection figures against a store whose answers are known by construction (tests/inspect/synthetic.py)."""

from __future__ import annotations

import sqlite3

import pytest

from harness.inspect.run import InspectOptions, inspect_store
from harness.inspect.scan import select
from harness.inspect.sla import load_sla
from harness.store import Store
from tests.inspect import synthetic
from tests.inspect.synthetic import BACKUP, FAILOVER_AT, PRIMARY, SILENCE, SINCE, UNTIL


class PublicApiOnly:
    """A store seen only through its query API, as any backend other than the SQLite file would be."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def query(self, flt, bodies=True):
        return self._store.query(flt, bodies=bodies)


def options(folder, **extra) -> InspectOptions:
    return InspectOptions(
        since=SINCE, until=UNTIL, sla=load_sla(folder / "sla.yaml"),
        upstreams={"adt": [PRIMARY, BACKUP], "lab": ["10.10.1.21:12576"]}, **extra,
    )  # fmt: skip


@pytest.fixture
def result(synthetic_store, shanghai):
    with Store(synthetic_store, create=False) as store:
        return inspect_store(store, options(synthetic_store.parent, compare_previous=True))


def channel(result, name):
    return next(ch for ch in result["channels"] if ch["channel"] == name)


def test_volumes_rates_and_percentiles_are_the_constructed_ones(result):
    adt = channel(result, "adt")
    assert adt["exchanges"] == 1000 and adt["success_rate"] == 100.0
    assert adt["latency_ms"] == {"count": 1000, "p50": 500.5, "p95": 950.05, "p99": 990.01, "max": 1000.0}
    assert adt["per_hour"] == {"mean": 250.0, "peak": 400, "peak_hour": "2026-03-02T11:00:00+08:00"}
    assert adt["series"]["bucket_s"] == 300 and adt["series"]["volume"][:4] == [
        22,
        21,
        22,
        21,
    ]  # one every 14 s
    assert sum(adt["series"]["volume"]) == 1000
    assert {t["message_type"]: t["exchanges"] for t in adt["message_types"]} == {
        "ADT^A01": 500,
        "ADT^A08": 500,
    }
    lab = channel(result, "lab")
    assert lab["exchanges"] == 200 and lab["late_replies"] == 3  # 5 replays and 3 stray replies left out
    assert lab["outcomes"] == {"ok": 172, "nak": 20, "timeout": 8}
    assert lab["success_rate"] == 86.0 and lab["failures"] == 28
    assert lab["latency_ms"]["p95"] == 5.0 and lab["latency_ms"]["count"] == 192  # timeouts are not latencies
    medins = channel(result, "medins")
    assert medins["exchanges"] == 100 and medins["success_rate"] == 90.0
    assert result["totals"]["exchanges"] == 1300


def test_failures_are_grouped_by_what_they_say_with_an_example_each(result, synthetic_store):
    lab = channel(result, "lab")
    first, second = lab["failures_top"][:2]
    assert (first["outcome"], first["code"], first["reason"], first["count"]) == (
        "nak",
        "AE",
        "unknown test code",
        20,
    )
    assert (second["outcome"], second["reason"], second["count"]) == (
        "timeout",
        "no ACK within N s (ack_timeout_s)",
        8,
    )
    with Store(synthetic_store, create=False) as store:
        example = store.get(first["example_id"])
        assert example.channel == "lab" and example.outcome == "nak" and example.control_id == "L0"
    refused = channel(result, "medins")["failures_top"][0]
    assert (refused["code"], refused["reason"], refused["count"]) == ("-1", "余额不足", 10)


def test_sync_delay_is_capture_time_minus_the_message_time(result):
    adt = channel(result, "adt")["sync_delay_s"]
    assert (adt["p50"], adt["p95"], adt["min"], adt["max"], adt["no_time"]) == (4.5, 9.0, 0.0, 9.0, 0)
    medins = channel(result, "medins")["sync_delay_s"]
    assert (medins["p50"], medins["p95"], medins["count"]) == (30.0, 30.0, 100)


def test_the_silence_in_business_hours_and_the_channel_without_traffic(result):
    adt = channel(result, "adt")
    assert [(s["from_local"], s["to_local"], s["minutes"]) for s in adt["silences"]] == [
        ("2026-03-02T09:56:26+08:00", "2026-03-02T10:45:00+08:00", round((SILENCE[1] - SILENCE[0]) / 60, 1))
    ]
    assert adt["silences"][0]["minutes"] == 48.6
    cdc = channel(result, "cdc")
    assert cdc["exchanges"] == 0 and cdc["kind"] is None
    assert [s["minutes"] for s in cdc["silences"]] == [240.0]
    assert channel(result, "lab")["silences"] == [] and channel(result, "medins")["silences"] == []


def test_the_failover_to_the_backup_upstream(result):
    adt = channel(result, "adt")
    assert [(u["address"], u["role"], u["exchanges"]) for u in adt["upstreams"]] == [
        (PRIMARY, "primary", 750),
        (BACKUP, "backup", 250),
    ]
    [event] = adt["failovers"]
    assert (event["kind"], event["from"], event["to"]) == ("failover", PRIMARY, BACKUP)
    assert event["at_local"] == "2026-03-02T11:22:30+08:00" and adt["failover_count"] == 1
    assert synthetic.FAILOVER_AT == FAILOVER_AT


def test_every_sla_breach_is_named_and_nothing_else(result):
    found = {(b["channel"], b["message_type"], b["key"]) for b in result["sla"]["breaches"]}
    assert found == {
        ("adt", None, "failovers_max"), ("adt", None, "silence_minutes"), ("cdc", None, "volume_min"),
        ("cdc", None, "silence_minutes"), ("lab", None, "success_rate_min"),
    }  # fmt: skip
    texts = [b["text"] for b in result["sla"]["breaches"]]
    assert "lab: success rate 86 % < minimum 99 %" in texts
    assert result["verdict"] == "FAIL"


def test_the_trend_compares_with_the_period_of_the_same_length_before(result):
    adt = channel(result, "adt")
    assert adt["previous"] == {"exchanges": 100, "success_rate": 100.0, "failures": 0, "p95_ms": 3.0}
    assert adt["change"]["exchanges_pct"] == 900.0 and adt["change"]["success_rate_points"] == 0.0
    lab = channel(result, "lab")  # named in the SLA: reported in both periods, with no traffic before
    assert lab["previous"]["exchanges"] == 0 and lab["change"]["exchanges_pct"] is None
    assert result["previous_window"]["since_local"] == "2026-03-02T04:00:00+08:00"


def test_the_sqlite_scan_and_the_public_query_api_give_the_same_report(synthetic_store, shanghai):
    with Store(synthetic_store, create=False) as store:
        fast = inspect_store(store, options(synthetic_store.parent, compare_previous=True))
        slow = inspect_store(PublicApiOnly(store), options(synthetic_store.parent, compare_previous=True))
    fast.pop("run"), slow.pop("run")
    assert fast == slow


def test_replays_count_only_when_asked(synthetic_store, shanghai):
    with Store(synthetic_store, create=False) as store:
        result = inspect_store(store, options(synthetic_store.parent, live_only=False, channels=["lab"]))
    assert channel(result, "lab")["exchanges"] == 205
    assert [ch["channel"] for ch in result["channels"]] == ["lab"]


def test_a_short_window_reads_through_the_channel_time_index(synthetic_store):
    with sqlite3.connect(synthetic_store) as conn:
        for channels, index in ((["adt"], "exchanges_channel_started"), (None, "exchanges_started")):
            sql, params = select(UNTIL - 1800, UNTIL, channels, True)
            plan = " ".join(row[-1] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params))
            assert f"USING INDEX {index}" in plan, plan
            if channels:
                assert len(conn.execute(sql, params).fetchall()) == 200  # adt's last 30 minutes
