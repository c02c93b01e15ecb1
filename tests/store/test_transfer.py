"""Copies between stores on real SQLite files and a real PostgreSQL server: bytes identical both ways,
ids kept or moved up together with their links, resumable after a kill, catching up later."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path

import psycopg

from harness.exchange import Exchange
from harness.store import CaptureWriter, ExchangeFilter, Store
from harness.store.transfer import copy_store

T0 = 1764072000.123456789


def varied() -> list[Exchange]:
    """Exchanges with every kind of value a store holds: GBK and binary bodies, NUL and 0xFF bytes,
    missing responses, floats at full precision, HTTP fields, faults, notes, enhanced-mode replies."""
    gbk = "MSH|^~\\&|HIS|昆明市第一人民医院|HC|H|20261125||ADT^A01|G1|P|2.5\rPID|1||9||张三\r".encode("gbk")
    rows = [
        Exchange(channel="adt", started_at=T0, request=gbk, response=b"MSA|AA|G1\r", control_id="G1",
                 charset="gb18030", message_type="ADT^A01", meta={"sending_facility": "昆明市第一人民医院"}),
        Exchange(channel="adt", started_at=T0 + 1 / 3, request=b"\x00\x01\xff\xfe" * 64, response=None,
                 outcome="malformed", notes=["binary", "二进制"], error="not HL7"),
        Exchange(channel="medins", protocol="http", kind="medins", started_at=T0 + 2.000001, method="POST",
                 path="/fsi/api/rsfComIfsService/callService", status=200, request=b'{"infno":"2207"}',
                 response=b'{"infcode":-1}', outcome="nak", meta={"infno": "2207", "infcode": -1},
                 fault={"id": "r1", "action": {"type": "latency", "ms": 200}}),
        Exchange(channel="lab", started_at=T0 + 86400 * 3, request=b"MSH|late", outcome="pending",
                 accept_ack_code="CA", accept_response=b"MSA|CA|L1\r", control_id="L1"),
    ]
    for ex in rows:
        if ex.outcome != "pending":
            ex.finish(ex.started_at + 0.0123456789)
    return rows


def fill(store: Store) -> None:
    store.add_many(varied())
    run = store.create_run("replay", {"to": "127.0.0.1:2575", "名": "值"}, target="127.0.0.1:2575")
    store.add(Exchange(channel="adt", started_at=T0 + 10, request=b"again", run_id=run, original_id=1))
    store.finish_run(run, summary={"sent": 1})


def sqlite_rows(path: Path) -> tuple[list, list]:
    conn = sqlite3.connect(path)
    try:
        columns = [r[1] for r in conn.execute("PRAGMA table_info(exchanges)")]
        exchanges = conn.execute(f"SELECT {', '.join(columns)} FROM exchanges ORDER BY id").fetchall()
        runs = conn.execute("SELECT * FROM runs ORDER BY id").fetchall()
    finally:
        conn.close()
    return exchanges, runs


def test_sqlite_to_postgresql_and_back_is_bytes_identical(tmp_path, pg_url):
    original = tmp_path / "original.db"
    back = tmp_path / "back.db"
    with Store(original) as src:
        fill(src)
    with Store(original) as src, Store(pg_url) as central:
        result = copy_store(src, central)
        assert (result.copied, result.runs) == (5, 1)
        for ex in src.query():
            assert central.get(ex.id) == ex  # same ids, every field equal
    with Store(pg_url) as central, Store(back) as dst:
        assert copy_store(central, dst).copied == 5
    before, after = sqlite_rows(original), sqlite_rows(back)
    assert before == after  # every column of every row, bodies byte for byte, floats bit for bit
    assert isinstance(after[0][1][9], bytes) and after[0][1][9] == b"\x00\x01\xff\xfe" * 64


def test_a_copy_into_a_store_with_rows_moves_ids_up_with_their_links_and_catches_up(tmp_path, pg_url):
    source = tmp_path / "proxy-host-2.db"
    with Store(source) as src:
        fill(src)
    with Store(pg_url) as central:
        central.add_many([Exchange(channel="x", started_at=T0, request=b"central %d" % i) for i in range(7)])
        central.create_run("capture", {})
        with Store(source) as src:
            first = copy_store(src, central)
            assert first.copied == 5 and first.segments[0].offset == 7
            replay = central.get(12)
            assert (replay.request, replay.original_id, replay.run_id) == (b"again", 8, 2)
            assert central.get(replay.original_id).request == varied()[0].request
            assert central.get_run(2).params == {"to": "127.0.0.1:2575", "名": "值"}
            again = copy_store(src, central)
            assert (again.copied, again.already) == (0, 5)
            # the source goes on: a new exchange, and the pending one completed in place
            src.add(Exchange(channel="adt", started_at=T0 + 20, request=b"newer"))
            src._execute(
                "UPDATE exchanges SET outcome = 'ok', ack_code = 'AA', response = ? WHERE control_id = 'L1'",
                (b"MSA|AA|L1\r",),
            )
            central.add(Exchange(channel="x", started_at=T0, request=b"meanwhile"))  # takes id 13
            later = copy_store(src, central)
        assert (later.copied, later.refreshed) == (1, 1)
        assert [s.offset for s in later.segments] == [7, 8]  # the new range lands above id 13
        assert central.get(14).request == b"newer"
        completed = central.get(11)
        assert (completed.control_id, completed.outcome, completed.response) == ("L1", "ok", b"MSA|AA|L1\r")
        assert central.count() == 14 and len({ex.id for ex in central.query(bodies=False)}) == 14


def test_a_copy_killed_midway_resumes_without_losing_or_repeating_anything(tmp_path, pg_url, processes):
    source = tmp_path / "big.db"
    with Store(source, synchronous="OFF") as src:
        for start in range(0, 20_000, 5000):
            src.add_many([
                Exchange(channel="adt", started_at=T0 + i, request=b"MSH|%d|" % i + b"x" * 200,
                         control_id=str(i))
                for i in range(start, start + 5000)
            ])  # fmt: skip
    proc = processes.harness("store", "copy", "--from", f"sqlite:{source}", "--to", pg_url, "--batch", "50")
    deadline = time.monotonic() + 60
    copied = 0
    while time.monotonic() < deadline:
        with psycopg.connect(pg_url) as conn:
            try:
                copied = conn.execute("SELECT COUNT(*) FROM exchanges").fetchone()[0]
            except psycopg.Error:
                copied = 0
        if copied >= 1000 or proc.poll() is not None:
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"the copy finished before it could be killed: {proc.stdout.read()}"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    resumed = processes.harness("store", "copy", "--from", f"sqlite:{source}", "--to", pg_url, "--json")
    out, _ = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, out
    with Store(pg_url) as central, Store(source) as src:
        assert central.count() == 20_000
        ids = [ex.id for ex in central.query(bodies=False)]
        assert ids == list(range(1, 20_001))  # nothing twice, nothing missing, ids kept
        for i in (1, 9_999, 20_000):
            assert central.get(i) == src.get(i)


def test_the_writer_tags_exchanges_with_its_instance_and_a_filter_selects_them(store_target):
    for name in ("his-proxy-1", "cdc-proxy"):
        with CaptureWriter(store_target, "durable", instance=name) as writer:
            for i in range(3):
                writer.submit(Exchange(channel="adt", request=b"m", control_id=f"{name}-{i}"))
            assert writer.flush(30)
    with Store(store_target) as store:
        assert store.count(ExchangeFilter(proxy="cdc-proxy")) == 3
        assert {ex.proxy for ex in store.query(ExchangeFilter(proxy=["his-proxy-1"]))} == {"his-proxy-1"}
        info = store.info()
        assert [(row["proxy"], row["exchanges"]) for row in info["by_proxy"]] == [
            ("cdc-proxy", 3), ("his-proxy-1", 3),
        ]  # fmt: skip


def test_prune_removes_what_is_older_and_keeps_the_rest(store_target):
    day = 86400
    start = (int(time.time()) // day - 5) * day  # midnight UTC five days ago
    with Store(store_target) as store:
        store.add_many([
            Exchange(channel="adt", started_at=start + d * day + h * 3600, request=b"d%dh%d" % (d, h))
            for d in range(6) for h in (1, 13)
        ])  # fmt: skip
        before = start + 3 * day + 12 * 3600  # day 3 at noon: days 0-2 go whole, day 3 keeps 13:00
        result = store.prune(before)
        assert result.exchanges == 7
        assert sorted(ex.request for ex in store.query()) == sorted(
            [b"d3h13"] + [b"d%dh%d" % (d, h) for d in (4, 5) for h in (1, 13)]
        )
        if store.kind == "postgresql":
            from harness.store.postgres import partition_name

            gone = [partition_name(start // day + d) for d in range(3)]
            assert result.partitions == gone and result.rows_deleted == 1
            kept = store.partitions()
            assert not set(gone) & set(kept)
            assert {partition_name(start // day + d) for d in range(3, 6)} <= set(kept)
        else:
            assert result.rows_deleted == 7
        assert store.prune(before).exchanges == 0
