"""CaptureWriter's lock-free `submit`: no exchange waits for a wake-up that never comes, none is lost
when `close()` races a submission, and a durable commit lingering for exchanges on their way is
woken when they are all queued."""

from __future__ import annotations

import sys
import threading

import pytest

from harness.exchange import Exchange
from harness.store import CaptureWriter, Store

THREADS = 8
PER_THREAD = 150


def make(control_id: str) -> Exchange:
    body = b"MSH|^~\\&|HIS|H1|HC|H2|20261203||ADT^A01|" + control_id.encode() + b"|P|2.5\rPID|1||42\r"
    reply = b"MSA|AA|" + control_id.encode()
    return Exchange(channel="adt", request=body, response=reply, control_id=control_id)


def submit_from_threads(writer: CaptureWriter, results: dict, lock: threading.Lock, all_done: threading.Event,
                        total: int, refused: list | None = None) -> list[threading.Thread]:  # fmt: skip
    def callback(cid: str):
        def done(result):
            with lock:
                results[cid] = result
                if len(results) == total:
                    all_done.set()

        return done

    def run(t: int) -> None:
        for i in range(PER_THREAD):
            cid = f"T{t}-{i:04d}"
            try:
                writer.submit(make(cid), callback(cid))
            except RuntimeError:
                assert refused is not None, "submit refused while the writer was open"
                with lock:
                    refused.append(cid)

    threads = [threading.Thread(target=run, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    return threads


@pytest.mark.parametrize("mode", ["durable", "fast"])
@pytest.mark.parametrize("process", [False, True])
def test_concurrent_submitters_never_leave_the_writer_asleep(tmp_path, mode, process):
    """An idle writer waits `check_interval_s` (here 60 s) unless a submission wakes it: each of these
    exchanges is committed long before that, whichever thread queued it and however they interleave
    (the interpreter switches threads every microsecond here, so they interleave mid-submission)."""
    total = THREADS * PER_THREAD
    results: dict[str, object] = {}
    lock, all_done = threading.Lock(), threading.Event()
    path = tmp_path / "c.db"
    with CaptureWriter(path, mode, window_s=0.01, check_interval_s=60, process=process) as writer:
        interval = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)
        try:
            for thread in submit_from_threads(writer, results, lock, all_done, total):
                thread.join()
        finally:
            sys.setswitchinterval(interval)
        assert all_done.wait(30), f"{total - len(results)} exchanges still waiting for the writer"
    assert all(isinstance(r, int) for r in results.values())
    with Store(tmp_path / "c.db") as store:
        assert store.count() == total


def test_close_racing_submissions_loses_nothing(tmp_path):
    """Every submission either raises (the writer is closed) or is committed with its callback run."""
    results: dict[str, object] = {}
    refused: list[str] = []
    lock, all_done = threading.Lock(), threading.Event()
    writer = CaptureWriter(tmp_path / "c.db", "durable")
    threads = submit_from_threads(writer, results, lock, all_done, THREADS * PER_THREAD, refused)
    writer.close()
    for thread in threads:
        thread.join()
    assert len(results) + len(refused) == THREADS * PER_THREAD
    assert not set(results) & set(refused)
    assert all(isinstance(r, int) for r in results.values())
    with Store(tmp_path / "c.db") as store:
        assert store.count() == len(results)
    assert writer.pending == 0


def test_a_lingering_durable_commit_is_woken_when_the_awaited_exchanges_are_queued(tmp_path):
    """With three exchanges said to be on their way, a commit waits up to `commit_delay_s` (here 30 s)
    for them; the submission that completes the group wakes it, and all four share one commit."""
    committed = threading.Event()
    seen: list[object] = []

    def done(result):
        seen.append(result)
        if len(seen) == 4:
            committed.set()

    writer = CaptureWriter(tmp_path / "c.db", "durable", commit_delay_s=30.0, siblings=lambda: 3)
    try:
        writer.submit(make("A"), done)
        for _ in range(2000):  # until the commit lingers for the three (at most 20 s)
            if writer._lingering:
                break
            threading.Event().wait(0.01)
        assert writer._lingering, "the commit did not wait for the exchanges on their way"
        for cid in ("B", "C", "D"):
            writer.submit(make(cid), done)
        assert committed.wait(20), "the lingering commit was not woken by the last awaited exchange"
        assert writer.commits == 1 and all(isinstance(r, int) for r in seen)
    finally:
        writer.close()
