"""ReplayRun over a real store file with a recording sender: per-patient order under concurrency,
rewrites and links stored, resume without re-sending what got a reply."""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.exchange import Exchange
from harness.hl7v2.ack import build_ack
from harness.replay.pacing import Pace
from harness.replay.report import collect
from harness.replay.rewrite import Rules
from harness.replay.run import ReplayOptions, ReplayRun, ordering_key
from harness.replay.selection import ReplayItem, Selection
from harness.replay.sender import Sent
from harness.store import ExchangeFilter, Store
from tests.replay.traffic import adt


class RecordingSender:
    """Answers AA (AE for patients in `nak`) after a short pause, recording what it was sent."""

    protocol = "mllp"
    target = "recorder"

    def __init__(self, log: list, lock: threading.Lock, nak=(), pause=0.0, on_send=None):
        self.log, self.lock, self.nak, self.pause, self.on_send = log, lock, set(nak), pause, on_send

    def send(self, payload, *, control_id=None, charset=None):
        started = time.time()
        patient = payload.split(b"PID|1||", 1)[1].split(b"^", 1)[0].decode()
        with self.lock:
            self.log.append((patient, control_id, payload))
        if self.on_send:
            self.on_send()
        time.sleep(self.pause)
        code = "AE" if patient in self.nak else "AA"
        ack = build_ack(payload, code)
        return Sent(started, time.time(), ack, "ok" if code == "AA" else "nak", code, 1.0)

    def close(self):
        pass


def fill(store_path: Path, patients: list[str]) -> None:
    with Store(store_path) as s:
        for i, p in enumerate(patients):
            payload = adt(i, p)
            ack = build_ack(payload, "AA")
            ex = Exchange(
                channel="adt", started_at=1000.0 + i, request=payload, response=ack, outcome="ok",
                ack_code="AA", message_type="ADT^A08", control_id=f"MSG{i:05d}", latency_ms=2.0,
            )  # fmt: skip
            s.add(ex)


@settings(max_examples=15, deadline=None)
@given(
    patients=st.lists(st.sampled_from(["P1", "P2", "P3", "P4", "P5"]), min_size=1, max_size=40),
    concurrency=st.integers(min_value=2, max_value=6),
)
def test_property_one_patients_messages_never_overtake(patients, concurrency):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.db"
        fill(path, patients)
        log: list = []
        lock = threading.Lock()
        with Store(path, check_same_thread=False) as store:
            run = ReplayRun(
                store,
                ReplayOptions(target="recorder", concurrency=concurrency),
                lambda: RecordingSender(log, lock, pause=0.001),
            )
            run.execute()
        assert len(log) == len(patients)
        for p in set(patients):
            sent = [ctl for patient, ctl, _ in log if patient == p]
            assert sent == [f"MSG{i:05d}" for i, q in enumerate(patients) if q == p]


def test_rewrites_links_and_classification(tmp_path):
    path = tmp_path / "s.db"
    fill(path, ["P1", "P2", "P1"])
    log: list = []
    lock = threading.Lock()
    options = ReplayOptions(
        target="recorder", rules=Rules(new_control_ids=True, retarget_facility="TEST"), pace=Pace("max")
    )
    with Store(path, check_same_thread=False) as store:
        run = ReplayRun(store, options, lambda: RecordingSender(log, lock, nak={"P2"}))
        progress = run.execute()
        assert (progress.selected, progress.sent, progress.replied) == (3, 3, 3)
        assert [ctl for _, ctl, _ in log] == [f"R{run.run_id}-1", f"R{run.run_id}-2", f"R{run.run_id}-3"]
        assert all(b"|HC|TEST|" in payload for _, _, payload in log)
        replays = list(store.query(ExchangeFilter(run_id=run.run_id)))
        assert [r.original_id for r in replays] == [1, 2, 3]
        assert replays[0].meta["replay"]["original_control_id"] == "MSG00000"
        assert store.get(1).request == adt(0, "P1")  # the original is untouched
        # the re-targeted facility comes back as the ACK's MSH-4: expected, so ignored for this run
        report = collect(store, "capture", run.run_id)
        assert ("MSH-4", "HOSP", "TEST", True) in [
            (d.path, d.original, d.replay, d.ignored) for d in report.results[0].comparison.differences
        ]
        assert [r.comparison.classification for r in report.results] == [
            "equivalent",
            "new_error",
            "equivalent",
        ]
        assert store.get_run(run.run_id).status == "finished"


def test_stopped_run_resumes_without_resending(tmp_path):
    path = tmp_path / "s.db"
    fill(path, [f"P{i}" for i in range(12)])
    log: list = []
    lock = threading.Lock()
    stop = threading.Event()

    def maybe_stop():
        if len(log) >= 5:
            stop.set()

    with Store(path, check_same_thread=False) as store:
        options = ReplayOptions(target="recorder", concurrency=1)
        run = ReplayRun(store, options, lambda: RecordingSender(log, lock, on_send=maybe_stop), stop=stop)
        run.execute()
        assert store.get_run(run.run_id).status == "interrupted"
        first = len(log)
        assert 5 <= first < 12
        resumed = ReplayRun.resume(store, run.run_id, lambda opts: lambda: RecordingSender(log, lock))
        progress = resumed.execute()
        assert progress.skipped == first and progress.selected == 12
        assert sorted(ctl for _, ctl, _ in log) == [f"MSG{i:05d}" for i in range(12)]
        assert store.get_run(run.run_id).status == "finished"


def test_ordering_key_paths():
    item = ReplayItem(key="k", payload=adt(1, "P77"))
    assert ordering_key(item, "PID-3") == "P77^^^HOSP^MR"
    assert ordering_key(item, "PID-3.1") == "P77"
    assert ordering_key(item, "PID-3.4") == "HOSP"
    assert ordering_key(item, "PID-19") is None
    assert ordering_key(item, None) is None
    assert ordering_key(ReplayItem(key="k", payload=b"garbage"), "PID-3") is None


def test_options_round_trip_through_the_run_row():
    options = ReplayOptions(
        target="h:1", pace=Pace("rate", 5), concurrency=3, order_key=None,
        rules=Rules(time_now=True), selection=Selection(channels=["adt"], outcomes=["nak"]),
    )  # fmt: skip
    again = ReplayOptions.from_params(options.to_params())
    assert again == options
