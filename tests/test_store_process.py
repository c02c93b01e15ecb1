"""CaptureWriter with SQLite in a child process (the proxy's setting): the same promises as in-process."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time

import pytest

from harness.exchange import Exchange
from harness.store import CaptureWriter, Store, StoreError


def make(control_id: str, **kw) -> Exchange:
    body = b"MSH|^~\\&|HIS|H1|HC|H2|20261125||ADT^A01|" + control_id.encode() + b"|P|2.5\rPID|1||42\r"
    return Exchange(channel="adt", request=body, response=b"MSA|AA|" + control_id.encode(),
                    control_id=control_id, meta={"version": "2.5"}, **kw)  # fmt: skip


@pytest.mark.parametrize("mode", ["durable", "fast"])
def test_callbacks_run_after_the_childs_commit(tmp_path, mode):
    path = tmp_path / "c.db"
    visible: dict[str, bool] = {}
    seen: dict[str, object] = {}
    with CaptureWriter(path, mode, process=True) as writer:
        probe = sqlite3.connect(path, check_same_thread=False)

        def callback(ex):
            def done(result):
                seen[ex.control_id] = result
                row = probe.execute("SELECT control_id FROM exchanges WHERE id = ?", (result,)).fetchone()
                visible[ex.control_id] = row == (ex.control_id,)

            return done

        exchanges = [make(str(i), notes=["n"] if i % 7 == 0 else []) for i in range(300)]
        for ex in exchanges:
            writer.submit(ex, callback(ex))
        assert writer.flush(30)
        stats = writer.stats()
    probe.close()
    assert len(visible) == 300 and all(visible.values())
    assert [seen[ex.control_id] for ex in exchanges] == [ex.id for ex in exchanges]
    assert stats["written"] == 300 and stats["errors"] == 0
    with Store(path) as store:
        got = list(store.query())
    assert [(g.control_id, g.request, g.notes, g.meta) for g in got] == [
        (ex.control_id, ex.request, ex.notes, ex.meta) for ex in exchanges
    ]


def test_a_bad_exchange_fails_alone_with_its_own_error(tmp_path):
    results = []
    with CaptureWriter(tmp_path / "c.db", "fast", process=True, window_s=0.01) as writer:
        for ex in [make("good1"), Exchange(channel="adt", request=None), make("good2")]:  # request NOT NULL
            writer.submit(ex, results.append)
        assert writer.flush(30)
        assert (writer.written, writer.errors) == (2, 1)
    assert isinstance(results[0], int) and isinstance(results[2], int)
    assert isinstance(results[1], sqlite3.IntegrityError)
    with Store(tmp_path / "c.db") as store:
        assert [ex.control_id for ex in store.query()] == ["good1", "good2"]


def test_a_store_that_cannot_be_opened_fails_at_construction(tmp_path):
    bad = tmp_path / "not-a-store.db"
    bad.write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(StoreError, match="not-a-store.db"):
        CaptureWriter(bad, "durable", process=True)


def test_a_dead_child_is_replaced_and_its_health_reported(tmp_path):
    results, health = [], []
    writer = CaptureWriter(tmp_path / "c.db", "durable", process=True, check_interval_s=0.05,
                           on_health=health.append)
    try:
        writer.submit(make("before"), results.append)
        assert writer.flush(30)
        first = writer._child.pid
        os.kill(first, signal.SIGKILL)  # the OOM killer, or an operator
        deadline = time.monotonic() + 20
        while writer._child.pid == first and time.monotonic() < deadline:
            time.sleep(0.02)  # noticed while idle, without any write
        assert writer._child.pid != first and writer._child.alive
        for cid in ("after1", "after2"):
            writer.submit(make(cid), results.append)
        assert writer.flush(30)
    finally:
        writer.close()
    assert all(isinstance(r, int) for r in results) and len(results) == 3
    assert [h.ok for h in health] == [False, True] and "died" in health[0].reason
    with Store(tmp_path / "c.db") as store:
        assert [ex.control_id for ex in store.query()] == ["before", "after1", "after2"]


def test_a_batch_written_again_after_a_crash_is_not_stored_twice(tmp_path):
    from harness.store.codec import _to_row
    from harness.store.sqlite import _commit_rows

    with Store(tmp_path / "c.db") as store:
        rows = [_to_row(make(str(i))) for i in range(3)]
        first = _commit_rows(store._conn, rows[:2])  # the dead process's transaction had committed these
        again = _commit_rows(store._conn, rows, dedupe=True)
        assert again[:2] == first and isinstance(again[2], int) and again[2] not in first
        assert store.count() == 3


def test_close_flushes_and_the_child_exits(tmp_path):
    writer = CaptureWriter(tmp_path / "c.db", "fast", process=True, window_s=30.0)
    for i in range(50):
        writer.submit(make(str(i)))
    child = writer._child._proc
    writer.close()
    assert child.poll() == 0
    with Store(tmp_path / "c.db") as store:
        assert store.count() == 50


def test_durable_commit_waits_for_exchanges_on_their_way(tmp_path):
    """The proxy says how many replies are coming; their captures share one fsynced commit."""
    results = []
    with CaptureWriter(tmp_path / "c.db", "durable", process=True, commit_delay_s=30.0) as writer:
        writer.siblings = lambda: 2
        for cid in ("a", "b", "c"):
            writer.submit(make(cid), results.append)
        assert writer.flush(60)
        assert writer.commits == 1 and writer.written == 3
    assert results == [1, 2, 3]


def test_durable_commit_waits_at_most_the_delay(tmp_path):
    done = threading.Event()
    with CaptureWriter(tmp_path / "c.db", "durable", process=True, commit_delay_s=0.05) as writer:
        writer.siblings = lambda: 5  # announced, never submitted
        writer.submit(make("alone"), lambda result: done.set())
        assert done.wait(30)  # committed without flush once the delay ran out
        assert writer.commits == 1
