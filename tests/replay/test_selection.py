"""Selecting originals from a real store file, and from files."""

from __future__ import annotations

import time

import pytest

from harness.exchange import Exchange
from harness.replay.selection import Selection, from_files, from_store
from harness.store import Store, StoreError
from tests.replay.traffic import adt


@pytest.fixture
def now() -> float:
    return time.time()


@pytest.fixture
def store(tmp_path, now):
    with Store(tmp_path / "s.db") as s:
        rows = [
            ("adt", now - 7200, adt(1, "P1"), "ok", "AA"),
            ("adt", now - 3600, adt(2, "P2"), "nak", "AE"),
            ("adt", now - 1800, adt(3, "P1", trigger="A01"), "timeout", None),
            ("lab", now - 1700, adt(4, "P1"), "nak", "AR"),
            ("adt", now - 60, adt(5, "P3"), "ok", "AA"),
        ]
        for channel, t, payload, outcome, code in rows:
            trig = "A01" if b"ADT^A01" in payload else "A08"
            ctl = payload.split(b"|")[9].decode()
            s.add(Exchange(channel=channel, started_at=t, request=payload, outcome=outcome, ack_code=code,
                           message_type=f"ADT^{trig}", control_id=ctl))  # fmt: skip
        run = s.create_run("replay", {})
        s.add(Exchange(channel="adt", started_at=now, request=adt(2, "P2"), outcome="ok", run_id=run,
                       original_id=2, message_type="ADT^A08", control_id="R1-2"))  # fmt: skip
        yield s


def ids(store, **kw):
    return [item.original_id for item in from_store(store, Selection(**kw))]


def test_originals_only_in_captured_order(store):
    assert ids(store) == [1, 2, 3, 4, 5]


def test_filters(store, now):
    assert ids(store, channels=["adt"], outcomes=["nak", "timeout"]) == [2, 3]
    assert ids(store, since="-3h") == [1, 2, 3, 4, 5]
    assert ids(store, since="-90m") == [2, 3, 4, 5]  # relative: margins of many minutes either side
    assert ids(store, since=str(now - 1900), until=str(now - 1000)) == [3, 4]
    assert ids(store, message_types=["ADT^A01"]) == [3]
    assert ids(store, control_ids=["MSG00004"]) == [4]
    assert ids(store, path_values={"PID-3.1": "P1"}) == [1, 3, 4]
    assert ids(store, path_values={"PID-3.1": "re:^P[23]$"}, channels=["adt"]) == [2, 5]
    assert ids(store, limit=2) == [1, 2]


def test_relative_times_are_fixed_when_the_run_is_made(store):
    sel = Selection(since="-45m")
    assert abs(float(sel.since) - (time.time() - 2700)) < 600
    assert Selection.from_json(sel.to_json()) == sel


def test_item_fields(store, now):
    item = next(from_store(store, Selection(ids=[2])))
    assert (item.key, item.channel, item.control_id, item.message_type) == (
        "x2",
        "adt",
        "MSG00002",
        "ADT^A08",
    )
    assert item.original.ack_code == "AE" and item.captured_at == pytest.approx(now - 3600)


def test_bad_path_filter_is_a_clear_error(store):
    with pytest.raises(StoreError, match="bad regular expression"):
        ids(store, path_values={"PID-3": "re:("})


def test_from_files(tmp_path):
    (tmp_path / "b.hl7").write_bytes(adt(7, "P7").replace(b"\r", b"\r\n") + adt(8, "P8"))
    items = list(from_files([tmp_path]))
    assert [i.control_id for i in items] == ["MSG00007", "MSG00008"]
    assert [i.key for i in items] == [f"{tmp_path / 'b.hl7'}#0", f"{tmp_path / 'b.hl7'}#1"]
    assert items[0].captured_at is None and items[0].original_id is None
    assert b"\n" not in items[0].payload
