"""The capture store on real SQLite files and a real PostgreSQL server: schema and migrations,
permissions, filters, the writer. Tests taking `store_target` run on both backends."""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import pytest

from harness.exchange import Exchange
from harness.store import (
    MIGRATIONS,
    SCHEMA_VERSION,
    CaptureWriter,
    ExchangeFilter,
    Store,
    StoreError,
    parse_time,
)
from harness.store.sqlite import _migrate
from tests import messages


def adt(control_id: str, trigger: str = "A01", pid: str = "1001", name: str = "DOE^JOHN") -> bytes:
    hosts = {"sender": ("HIS", "H1"), "receiver": ("HC", "H2")}
    return messages.adt(control_id, trigger=trigger, pid=pid, name=name, ts="20261125120000", **hosts)


def make(control_id: str, **kw) -> Exchange:
    kw.setdefault("channel", "adt")
    kw.setdefault("message_type", f"ADT^{kw.pop('trigger', 'A01')}")
    if "request" not in kw:
        kw["request"] = adt(control_id, kw["message_type"].split("^")[1])
    kw.setdefault(
        "response", f"MSH|^~\\&|HC|H2|HIS|H1|||ACK|A{control_id}|P|2.5\rMSA|AA|{control_id}\r".encode()
    )
    kw.setdefault("ack_code", "AA")
    ex = Exchange(control_id=control_id, **kw)
    ex.finish(ex.started_at + 0.004)
    return ex


def ids(exchanges) -> list[int]:
    return [ex.id for ex in exchanges]


# -- file, schema, migrations ---------------------------------------------------------------------


def test_roundtrip_keeps_every_field(store_target):
    gb = "MSH|^~\\&|HIS|医院|||20261125||ADT^A01|77|P|2.5|||||CHN|GB18030\rPID|1||9^^^H||张三\r"
    ex = Exchange(
        channel="adt",
        started_at=1764072000.25,
        client_addr="127.0.0.1:40000",
        upstream_addr="127.0.0.1:12575",
        request=gb.encode("gb18030"),
        response=None,
        outcome="fault",
        message_type="ADT^A01",
        control_id="77",
        charset="gb18030",
        fault={"id": "r1", "action": {"type": "drop"}},
        meta={"sending_app": "HIS", "problems": []},
        error=None,
        notes=["dropped by rule r1", "医院"],
    )
    ex.finish(1764072000.5)
    with Store(store_target) as store:
        new_id = store.add(ex)
        assert new_id == ex.id == 1
        back = store.get(new_id)
    assert back == ex
    assert back.request.decode("gb18030") == gb
    with Store(store_target) as store:
        assert store.get(999) is None


def test_http_exchange_roundtrip(store_target):
    ex = Exchange(
        channel="medins",
        protocol="http",
        kind="medins",
        method="POST",
        path="/fsi/api/rsfComIfsService/callService",
        status=200,
        request=b'{"infno":"2207"}',
        response=b'{"infcode":-1,"err_msg":"x"}',
        outcome="nak",
        meta={"infno": "2207", "infcode": -1, "err_msg": "x"},
    )
    with Store(store_target) as store:
        store.add(ex)
        assert store.get(ex.id) == ex


def test_new_file_is_private_wal_and_current(tmp_path):
    path = tmp_path / "sub" / "c.db"
    old = os.umask(0)  # the most permissive umask: the store must still be owner-only
    try:
        store = Store(path)
        store.add(make("1"))
        for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            assert p.exists(), p
            assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
        with sqlite3.connect(path) as raw:
            assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert store.schema_version == SCHEMA_VERSION
        store.close()
    finally:
        os.umask(old)


def test_existing_file_permissions_are_left_alone(tmp_path):
    path = tmp_path / "c.db"
    Store(path).close()
    os.chmod(path, 0o640)  # an owner who chose group access keeps it
    Store(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


V1_SCHEMA = """
CREATE TABLE exchanges (
    id INTEGER PRIMARY KEY AUTOINCREMENT, channel TEXT NOT NULL, protocol TEXT NOT NULL, kind TEXT NOT NULL,
    started_at REAL NOT NULL, ended_at REAL, latency_ms REAL, client_addr TEXT, upstream_addr TEXT,
    request BLOB NOT NULL, response BLOB, outcome TEXT NOT NULL, ack_code TEXT, message_type TEXT,
    control_id TEXT, charset TEXT, fault TEXT, meta TEXT NOT NULL DEFAULT '{}', error TEXT,
    notes TEXT NOT NULL DEFAULT '[]');
CREATE INDEX exchanges_channel_started ON exchanges (channel, started_at);
CREATE INDEX exchanges_started ON exchanges (started_at);
CREATE INDEX exchanges_control_id ON exchanges (control_id);
CREATE INDEX exchanges_outcome ON exchanges (outcome);
CREATE INDEX exchanges_message_type ON exchanges (message_type);
INSERT INTO exchanges (channel, protocol, kind, started_at, ended_at, latency_ms, request, response, outcome,
    ack_code, message_type, control_id, fault)
VALUES ('adt', 'mllp', 'hl7v2', 1000.0, 1000.01, 10.0, X'4D53487C', NULL, 'timeout', NULL, 'ADT^A01', 'c1',
    '{"id":"r9","action":{"type":"drop"}}');
PRAGMA user_version = 1;
"""


def test_v1_file_is_migrated_on_open(tmp_path):
    path = tmp_path / "v1.db"
    with sqlite3.connect(path) as raw:
        raw.executescript(V1_SCHEMA)
    with Store(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        old = store.get(1)
        assert (old.request, old.outcome, old.control_id) == (b"MSH|", "timeout", "c1")
        assert old.fault == {"id": "r9", "action": {"type": "drop"}}
        assert (old.run_id, old.original_id, old.method, old.status, old.notes) == (
            None,
            None,
            None,
            None,
            [],
        )
        run = store.create_run("replay", {"to": "127.0.0.1:1"})
        new = make("c2", run_id=run, original_id=1, method="POST")
        store.add(new)
        assert list(store.query(ExchangeFilter(run_id=run)))[0].original_id == 1
    with sqlite3.connect(path) as raw:
        columns = {row[1] for row in raw.execute("PRAGMA table_info(exchanges)")}
        indexes = {row[1] for row in raw.execute("PRAGMA index_list(exchanges)")}
    assert {"run_id", "original_id", "method", "path", "status"} <= columns
    assert {"exchanges_run_id", "exchanges_original_id", "exchanges_channel_started"} <= indexes


def test_adding_a_column_is_one_more_migration(tmp_path):
    path = tmp_path / "c.db"
    with Store(path) as store:
        store.add(make("1"))
    future = [*MIGRATIONS, ("ALTER TABLE exchanges ADD COLUMN tls_version TEXT",)]
    conn = sqlite3.connect(path, isolation_level=None)
    _migrate(conn, path, future)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
    assert conn.execute("SELECT control_id, tls_version FROM exchanges").fetchall() == [("1", None)]
    _migrate(conn, path, future)  # idempotent once applied
    conn.close()
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1}"):  # one more than known
        Store(path)


def test_failed_migration_leaves_the_file_untouched(tmp_path):
    path = tmp_path / "c.db"
    with sqlite3.connect(path) as raw:
        raw.executescript(V1_SCHEMA)
    broken = [MIGRATIONS[0], MIGRATIONS[1], ("ALTER TABLE no_such_table ADD COLUMN x TEXT",)]
    conn = sqlite3.connect(path, isolation_level=None)
    with pytest.raises(sqlite3.OperationalError):
        _migrate(conn, path, broken)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    assert "runs" not in {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    conn.close()


def test_unusable_files_get_clear_errors(tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        Store(tmp_path / "missing.db", create=False)
    assert not (tmp_path / "missing.db").exists()
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StoreError, match="not a usable SQLite file"):
        Store(junk)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as raw:
        raw.execute("CREATE TABLE patients (id INTEGER)")
    with pytest.raises(StoreError, match="not a capture store"):
        Store(other)
    with pytest.raises(StoreError, match="is a directory"):
        Store(tmp_path)


# -- runs -------------------------------------------------------------------------------------------


def test_runs(store_target):
    with Store(store_target) as store:
        rid = store.create_run("replay", {"pace": "max"}, target="127.0.0.1:2575")
        run = store.get_run(rid)
        assert (run.kind, run.status, run.params, run.target, run.finished_at) == (
            "replay",
            "running",
            {"pace": "max"},
            "127.0.0.1:2575",
            None,
        )
        store.finish_run(rid, summary={"sent": 3})
        run = store.get_run(rid)
        assert run.status == "finished" and run.summary == {"sent": 3} and run.finished_at >= run.created_at
        store.create_run("compare", {})
        assert [r.kind for r in store.runs()] == ["replay", "compare"]
        assert [r.id for r in store.runs("compare")] == [rid + 1]
        with pytest.raises(ValueError, match="run kind"):
            store.create_run("nonsense", {})
        with pytest.raises(StoreError, match="run 99"):
            store.finish_run(99)
        assert store.get_run(99) is None


# -- filters ----------------------------------------------------------------------------------------


@pytest.fixture
def filled(store_target):
    store = Store(store_target)
    t0 = 1764072000.0
    rows = [
        make("a1", started_at=t0, trigger="A01"),
        make("a2", started_at=t0 + 60, trigger="A08", outcome="nak", ack_code="AE"),
        make("a3", started_at=t0 + 120, trigger="A01", channel="lab", outcome="timeout", response=None),
        make("a4", started_at=t0 + 180, message_type="ADTX^Z01", request=adt("a4", "Z01")),
        make("a5", started_at=t0 + 240, message_type="ORU^R01", request=adt("a5", pid="9002", name="LI^SI")),
        make("a6", started_at=t0 + 300, kind="medins", protocol="http", message_type="2207", request=b"{}"),
    ]
    store.add_many(rows)
    yield store, t0
    store.close()


def q(store, **kw) -> list[str]:
    return [ex.control_id for ex in store.query(ExchangeFilter(**kw))]


def test_column_filters(filled):
    store, t0 = filled
    assert q(store) == ["a1", "a2", "a3", "a4", "a5", "a6"]
    assert q(store, channel="lab") == ["a3"]
    assert q(store, channel=["lab", "adt"], limit=2) == ["a1", "a2"]
    assert q(store, message_type="ADT^A01") == ["a1", "a3"]
    assert q(store, message_type="ADT") == ["a1", "a2", "a3"]  # prefix by event type, never ADTX
    assert q(store, message_type=["ORU", "ADT^A08"]) == ["a2", "a5"]
    assert q(store, control_ids=["a5", "a2", "zz"]) == ["a2", "a5"]
    assert q(store, outcomes="nak") == ["a2"]
    assert q(store, outcomes=["nak", "timeout"]) == ["a2", "a3"]
    assert q(store, kind="medins") == ["a6"]
    assert q(store, since=t0 + 60, until=t0 + 180) == ["a2", "a3", "a4"]
    assert q(store, since="2025-11-25T12:02:00Z") == ["a3", "a4", "a5", "a6"]
    assert q(store, since="2025-11-25T20:02:00+08:00", until="2025-11-25T12:03:00Z") == ["a3", "a4"]
    assert q(store, since="-1h") == []
    assert q(store, ids=[3, 1, 42]) == ["a1", "a3"]
    assert q(store, order="-id", limit=2) == ["a6", "a5"]
    assert q(store, order="-started_at", outcomes="ok", limit=1) == ["a6"]
    assert q(store, limit=0) == []
    assert store.count(ExchangeFilter(message_type="ADT")) == 3
    assert store.count() == 6


def test_run_and_replay_filters(filled):
    store, _ = filled
    run = store.create_run("replay", {})
    store.add(make("a1", run_id=run, original_id=1))
    assert q(store, run_id=run) == ["a1"]
    assert q(store, replays=True) == ["a1"]
    assert len(q(store, replays=False)) == 6


def test_query_without_bodies(filled):
    store, _ = filled
    rows = list(store.query(ExchangeFilter(control_ids=["a1"]), bodies=False))
    assert (
        rows[0].request == b""
        and rows[0].response is None
        and rows[0].latency_ms == pytest.approx(4.0, abs=0.01)
    )


def test_bad_filters_fail_before_reading(filled):
    store, _ = filled
    with pytest.raises(ValueError, match="time 'yesterday'"):
        store.query(ExchangeFilter(since="yesterday"))
    with pytest.raises(StoreError, match="order"):
        store.query(ExchangeFilter(order="random"))
    with pytest.raises(StoreError, match="limit"):
        store.query(ExchangeFilter(limit=-1))


def test_parse_time():
    now = 1_000_000.0
    assert parse_time("-2h", now=now) == now - 7200
    assert parse_time("30m", now=now) == now - 1800
    assert parse_time("+15s", now=now) == now + 15
    assert parse_time("-1.5d", now=now) == now - 1.5 * 86400
    assert parse_time("now", now=now) == now
    assert parse_time("2026-11-25T00:00:00Z") == 1795564800.0
    assert parse_time("2026-11-25T08:00:00+08:00") == 1795564800.0
    assert parse_time(12.5) == 12.5
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_time("2026-13-45")


def _message_module_or_skip() -> None:
    try:
        import harness.hl7v2.message  # noqa: F401
    except Exception as exc:  # absent or mid-edit: the filter needs it, the rest of the store does not
        pytest.skip(f"harness.hl7v2.message not importable: {exc}")


def test_path_value_filter(filled):
    _message_module_or_skip()
    store, _ = filled
    assert q(store, path_values={"PID-3.1": "9002"}) == ["a5"]
    assert q(store, path_values={"PID-3.1": "re:^100"}) == ["a1", "a2", "a3", "a4"]
    assert q(store, path_values={"PID-3.1": "re:^100", "MSH-9.2": "A08"}) == ["a2"]
    assert q(store, path_values={"PID-5.1": "LI"}, channel="lab") == []
    assert q(store, path_values={"PID-3.1": "re:^100"}, limit=2) == ["a1", "a2"]
    assert store.count(ExchangeFilter(path_values={"PID-3.1": "re:."})) == 5  # the JSON body never matches
    with pytest.raises(StoreError, match="regular expression"):
        store.query(ExchangeFilter(path_values={"PID-3": "re:(unclosed"}))


def test_reading_while_a_writer_commits(store_target):
    path = store_target
    with CaptureWriter(path, "fast") as writer, Store(path) as reader:
        for i in range(50):
            writer.submit(make(str(i)))
        assert writer.flush(30)
        seen = [ex.control_id for ex in reader.query()]
        assert seen == [str(i) for i in range(50)]


@pytest.mark.slow
def test_streaming_100k_rows_in_bounded_memory(tmp_path):
    path = tmp_path / "big.db"
    body = b"x" * 1024
    with Store(path, synchronous="OFF") as store:
        for start in range(0, 100_000, 5000):
            store.add_many(
                [
                    Exchange(
                        channel="adt", started_at=float(i), request=body, response=body, control_id=str(i)
                    )
                    for i in range(start, start + 5000)
                ]
            )
    with Store(path) as store:
        tracemalloc.start()
        try:
            n = 0
            for ex in store.query(ExchangeFilter(channel="adt", since=10.0)):
                n += len(ex.request) > 0
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert n == 99_990
        assert peak < 20 * 1024 * 1024  # the rows hold ~200 MB of bodies; a streaming read holds a batch
        assert store.count(ExchangeFilter(since=50_000.0, until=50_009.0)) == 10


# -- the writer -----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["durable", "fast"])
def test_callbacks_run_after_commit(store_target, mode):
    path = store_target
    seen: dict[str, object] = {}
    visible: dict[str, bool] = {}
    with CaptureWriter(path, mode) as writer:
        probe = Store(path, check_same_thread=False)

        def callback(ex):
            def done(result):
                seen[ex.control_id] = result
                row = probe.get(result)
                visible[ex.control_id] = row.control_id == ex.control_id  # committed: seen elsewhere

            return done

        exchanges = [make(str(i)) for i in range(120)]
        for ex in exchanges:
            writer.submit(ex, callback(ex))
        assert writer.flush(30)
        stats = writer.stats()
    probe.close()
    assert all(visible.values()) and len(visible) == 120
    assert [seen[ex.control_id] for ex in exchanges] == [ex.id for ex in exchanges]
    assert stats["written"] == 120 and stats["pending"] == 0 and stats["errors"] == 0
    if mode == "fast":
        assert stats["commits"] < 120  # grouped
    with Store(path) as store:
        assert [ex.control_id for ex in store.query()] == [str(i) for i in range(120)]


def pending_and_final(control_id: str) -> tuple[Exchange, Exchange]:
    """An enhanced-mode exchange as the proxy captures it: at the CA, then completed at the AA."""
    ca = f"MSH|^~\\&|HC|H2|HIS|H1|||ACK|C{control_id}|P|2.5\rMSA|CA|{control_id}\r".encode()
    first = make(control_id, response=None, ack_code=None, outcome="pending",
                 accept_ack_code="CA", accept_response=ca)
    final = make(control_id, accept_ack_code="CA", accept_response=ca, outcome="ok")
    return first, final


@pytest.mark.parametrize("process", [False, True])
@pytest.mark.parametrize("mode", ["durable", "fast"])
def test_a_completed_exchange_updates_its_pending_row_in_place(store_target, mode, process):
    path = store_target
    with CaptureWriter(path, mode, process=process) as writer:
        same_batch = pending_and_final("same")
        writer.submit(same_batch[0])
        writer.submit(same_batch[1], replaces=same_batch[0])  # both in one group commit
        later = pending_and_final("later")
        writer.submit(later[0])
        assert writer.flush(30)
        writer.submit(later[1], replaces=later[0])  # its pending row is on disk already
        assert writer.flush(30)
        assert writer.stats()["errors"] == 0
    assert same_batch[1].id == same_batch[0].id and later[1].id == later[0].id
    with Store(path) as store:
        rows = list(store.query())
    assert [(ex.control_id, ex.outcome, ex.accept_ack_code, ex.ack_code) for ex in rows] == [
        ("same", "ok", "CA", "AA"), ("later", "ok", "CA", "AA"),
    ]
    assert rows[0].accept_response.endswith(b"MSA|CA|same\r") and rows[0].response.endswith(b"MSA|AA|same\r")


def test_a_completion_whose_pending_row_never_made_it_is_stored_whole(store_target):
    path = store_target
    first, final = pending_and_final("lost")
    first.request = "text, not bytes"  # cannot be turned into a row: the pending capture fails
    with CaptureWriter(path, "durable") as writer:
        writer.submit(first)
        writer.submit(final, replaces=first)
        assert writer.flush(30)
        assert writer.stats()["errors"] == 1
    with Store(path) as store:
        assert [(ex.control_id, ex.outcome) for ex in store.query()] == [("lost", "ok")]


def test_fast_window_closes_by_itself(store_target):
    committed = threading.Event()
    results = []
    with CaptureWriter(store_target, "fast", window_s=0.05) as writer:
        writer.submit(make("lonely"), lambda r: (results.append(r), committed.set()))
        assert committed.wait(30)  # no flush, no more traffic: the group still commits
        assert results == [1] and writer.pending == 0


def test_two_writers_share_one_file(store_target):
    """The proxy runs one writer per capture mode, both on the configured store."""
    path = store_target
    with CaptureWriter(path, "durable") as durable, CaptureWriter(path, "fast", window_s=0.01) as fast:

        def produce(writer, prefix):
            for i in range(300):
                writer.submit(make(f"{prefix}{i}", channel=prefix))

        threads = [threading.Thread(target=produce, args=(w, p)) for w, p in ((durable, "d"), (fast, "f"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert durable.flush(60) and fast.flush(60)
        assert durable.errors == fast.errors == 0
    with Store(path) as store:
        assert store.count(ExchangeFilter(channel="d")) == store.count(ExchangeFilter(channel="f")) == 300


def test_a_bad_exchange_fails_alone(store_target):
    results = []
    with CaptureWriter(store_target, "durable") as writer:
        writer.submit(make("good1"), results.append)
        writer.submit(Exchange(channel="adt", request=None), results.append)  # request is NOT NULL
        writer.submit(make("good2"), results.append)
        assert writer.flush(30)
        assert (writer.written, writer.errors) == (2, 1)
    assert isinstance(results[0], int) and isinstance(results[2], int)
    assert isinstance(results[1], Exception) and "null" in str(results[1]).lower()
    with Store(store_target) as store:
        assert [ex.control_id for ex in store.query()] == ["good1", "good2"]


def test_a_batch_of_differently_filled_exchanges_keeps_every_field(tmp_path):
    """Multi-row INSERTs leave out the columns NULL in all of a chunk's rows: whatever mix a batch
    holds (faults, errors, HTTP columns, replay links, sealed bodies), each row reads back whole."""
    from harness.store.codec import _to_row
    from harness.store.sqlite import _CHUNKS

    kinds = [
        {},
        {"fault": {"id": "r1", "action": {"type": "drop"}}, "outcome": "fault"},
        {"error": "upstream closed", "outcome": "error", "response": None, "ack_code": None},
        {"protocol": "http", "kind": "medins", "method": "POST", "path": "/x", "status": 200},
        {"accept_ack_code": "CA", "accept_response": b"MSH|^~\\&|\rMSA|CA|x\r", "proxy": "p1"},
        {"notes": ["a note"], "meta": {"structure": "ADT_A01"}, "client_addr": None},
    ]
    exchanges = [make(f"c{i}", started_at=1764072000.0 + i, **kinds[i % len(kinds)]) for i in range(300)]
    exchanges += [make(f"s{i}", started_at=1764073000.0 + i, **kinds[i % 2]) for i in range(_CHUNKS[1])]
    with Store(tmp_path / "s.db") as store:
        results = store.commit_rows([_to_row(ex) for ex in exchanges])
        assert results == list(range(1, len(exchanges) + 1))
        for ex, new_id in zip(exchanges, results, strict=True):
            ex.id = new_id
            assert store.get(new_id) == ex
        with pytest.raises(sqlite3.IntegrityError, match="NOT NULL"):
            raise store.commit_rows([_to_row(Exchange(channel="adt", request=None))] * 4)[0]


def test_writer_modes_and_lifecycle(store_target):
    with pytest.raises(ValueError, match="'off' means no writer"):
        CaptureWriter(store_target, "off")
    writer = CaptureWriter(store_target, "fast")
    writer.submit(make("1"))
    writer.close()  # flushes
    writer.close()
    with pytest.raises(RuntimeError, match="closed"):
        writer.submit(make("2"))
    with Store(store_target) as store:
        assert store.count() == 1


def test_back_pressure_signals_and_hard_limit(store_target):
    signals: list[bool] = []
    writer = CaptureWriter(
        store_target, "fast", window_s=30.0, high_water=4, hard_limit=6, on_pressure=signals.append
    )
    try:
        for i in range(6):
            writer.submit(make(str(i)))
        assert writer.saturated and signals == [True]
        blocked = threading.Thread(target=writer.submit, args=(make("6"),))
        blocked.start()
        blocked.join(0.3)
        assert blocked.is_alive()  # at the hard limit the producer waits instead of anything being dropped
        assert writer.flush(30)
        blocked.join(30)
        assert not blocked.is_alive()
        assert writer.flush(30)
        assert signals == [True, False] and not writer.saturated
        assert writer.written == 7
    finally:
        writer.close()


CHILD = r"""
import sys, time
from harness.exchange import Exchange
from harness.store import CaptureWriter

path, mode = sys.argv[1], sys.argv[2]
writer = CaptureWriter(path, mode)
body = b"MSH|^~\\&|HIS|H1|HC|H2|20261125||ADT^A01|%d|P|2.5\rPID|1||42\r" + b"Z" * 900

def confirm(seq):
    def done(result):
        if isinstance(result, int):
            sys.stdout.write(f"{seq}\n")
            sys.stdout.flush()
    return done

print("ready", flush=True)
seq = 0
while True:
    writer.submit(Exchange(channel="kill", request=body % seq, control_id=str(seq)), confirm(seq))
    seq += 1
    if seq % 20 == 0:
        time.sleep(0.002)
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["durable", "fast"])
def test_sigkill_loses_nothing_confirmed(store_target, processes, mode):
    path = store_target
    proc = processes.start([sys.executable, "-c", CHILD, str(path), mode], stderr=subprocess.PIPE)
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    confirmed: list[int] = []
    while len(confirmed) < 400:
        line = proc.stdout.readline()
        assert line, f"child stopped early: {proc.stderr.read()}"
        confirmed.append(int(line))
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    confirmed += [int(line) for line in proc.stdout.read().split()]  # confirmed up to the kill
    with Store(path) as store:
        stored = sorted(int(ex.control_id) for ex in store.query(bodies=False))
        if isinstance(path, Path):
            assert store._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert set(confirmed) <= set(stored), "an exchange confirmed to its producer is missing after the kill"
    # Commits happen in submission order, so whatever was lost is a tail: the open group, never a hole.
    assert stored == list(range(len(stored)))
    assert len(stored) - max(confirmed) - 1 <= 2000  # at most one group past the last confirmed commit


# -- store health ---------------------------------------------------------------------------------


def test_a_full_disk_marks_the_store_down_and_recovery_brings_it_back(tmp_path):
    health = []
    writer = CaptureWriter(tmp_path / "c.db", "durable", check_interval_s=0.05, on_health=health.append)
    try:
        writer.submit(make("fits"))
        assert writer.flush(30)
        pages = writer._store._conn.execute("PRAGMA page_count").fetchone()[0]
        writer._store._conn.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own 'disk is full'
        results = []
        writer.submit(make("too-much", request=b"x" * 200_000), results.append)
        assert writer.flush(30)
        assert isinstance(results[0], sqlite3.Error) and not writer.health.ok
        assert "full" in writer.health.reason and writer.errors_by_channel == {"adt": 1}
        writer._store._conn.execute("PRAGMA max_page_count = 1073741823")  # room again
        deadline = time.monotonic() + 20
        while not writer.health.ok and time.monotonic() < deadline:
            time.sleep(0.05)  # the probe write, about once a second, finds room
        assert writer.health.ok
    finally:
        writer.close()
    assert [h.ok for h in health] == [False, True]


@pytest.mark.parametrize("process", [False, True])
def test_a_store_deleted_while_open_fails_what_went_into_it_and_a_new_file_takes_over(tmp_path, process):
    path = tmp_path / "c.db"
    health = []
    writer = CaptureWriter(path, "durable", process=process, check_interval_s=0.05, on_health=health.append)
    try:
        writer.submit(make("kept"))
        assert writer.flush(30)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        results = []
        writer.submit(make("lost"), results.append)
        assert writer.flush(30)
        assert isinstance(results[0], StoreError) and "deleted or replaced" in str(results[0])
        deadline = time.monotonic() + 20
        while not writer.health.ok and time.monotonic() < deadline:
            time.sleep(0.05)
        writer.submit(make("after"), results.append)
        assert writer.flush(30) and isinstance(results[1], int)
    finally:
        writer.close()
    assert [h.ok for h in health] == [False, True]
    with Store(path) as store:  # the new file holds what came after; the deleted one is gone
        assert [ex.control_id for ex in store.query()] == ["after"]


@pytest.mark.parametrize("process", [False, True])
def test_a_damaged_store_is_refused_at_start_with_the_way_out(tmp_path, process):
    path = tmp_path / "c.db"
    with Store(path) as store:
        store.add_many([make(str(i), request=b"MSH|" + b"y" * 3000) for i in range(200)])
        store._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = path.stat().st_size
    with open(path, "r+b") as f:  # one zeroed page in the middle of the table
        f.seek((size // 4096 // 2) * 4096)
        f.write(b"\0" * 4096)
    with pytest.raises(StoreError, match=r"is damaged .*\.recover"):
        CaptureWriter(path, "durable", process=process, quick_check=True)


def test_metadata_that_is_not_text_never_keeps_an_exchange_out(store_target):
    raw = b"MSH|^~\\&|HIS\xff|F|HC|HOSP|2026||ADT^A01|C\xfe1|P|2.5\rPID|1||9\r"
    ex = make(
        "C1",
        request=raw,
        response=b"MSH|^~\\&|HC||||2026||ACK|A1|P|2.5\rMSA|AA|C\xfe1\r",
        meta={"sending_app": "HIS\udcff", "msgid": "\ud800"},
        notes=["read with surrogateescape"],
        error="bad \udcff",
    )
    ex.control_id = "C\udcfe1"  # what surrogateescape makes of the undecodable MSH-10
    with CaptureWriter(store_target, "durable") as writer:
        writer.submit(ex)
        assert writer.flush(30) and writer.stats()["errors"] == 0
    with Store(store_target) as store:
        (back,) = store.query()
    assert back.request == raw  # the bytes as they crossed the wire
    assert (back.control_id, back.meta["sending_app"]) == ("C\ufffd1", "HIS\ufffd")
    assert back.meta["msgid"] == "\ufffd" and back.error == "bad \ufffd"
    assert back.notes[-1].startswith("metadata held characters that are not text")
