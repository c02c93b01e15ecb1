import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.replay.ordering import OrderedDispatcher, run_ordered


def drain(d):
    out = []
    while (t := d.next()) is not None:
        out.append(t)
    return out


def test_same_key_waits_for_previous_done():
    d = OrderedDispatcher(4)
    d.push("a1", "A")
    d.push("a2", "A")
    d.push("b1", "B")
    started = drain(d)
    assert [t.item for t in started] == ["a1", "b1"]
    d.done(started[1])
    assert d.next() is None  # a2 still waits for a1
    d.done(started[0])
    assert d.next().item == "a2"


def test_concurrency_limit_and_fifo_between_keys():
    d = OrderedDispatcher(2)
    for i in range(5):
        d.push(i, f"k{i}")
    first = drain(d)
    assert [t.item for t in first] == [0, 1]
    d.done(first[1])
    assert d.next().item == 2


def test_unkeyed_items_are_independent():
    d = OrderedDispatcher(3)
    for i in range(3):
        d.push(i, None)
    assert [t.item for t in drain(d)] == [0, 1, 2]


def test_earliest_startable_first_after_release():
    d = OrderedDispatcher(1)
    d.push("a1", "A")
    d.push("b1", "B")
    d.push("a2", "A")
    t = d.next()
    d.done(t)
    t = d.next()
    assert t.item == "b1"
    d.done(t)
    assert d.next().item == "a2"
    assert d.pending == 0


def test_done_twice_is_an_error():
    d = OrderedDispatcher(1)
    d.push(1, "k")
    t = d.next()
    d.done(t)
    with pytest.raises(ValueError, match="not running"):
        d.done(t)


def test_rejects_zero_concurrency():
    with pytest.raises(ValueError, match="at least 1"):
        OrderedDispatcher(0)


@settings(max_examples=40, deadline=None)
@given(
    keys=st.lists(st.sampled_from(["P1", "P2", "P3", "P4", "P5", None]), min_size=1, max_size=60),
    concurrency=st.integers(min_value=2, max_value=6),
    delays=st.lists(st.integers(min_value=0, max_value=3), min_size=60, max_size=60),
)
def test_property_per_key_order_with_real_threads(keys, concurrency, delays):
    """A recording sender on a real pool: per-key send order equals captured order, no overlap per key."""
    lock = threading.Lock()
    sent: list[tuple[str | None, int]] = []
    in_flight: dict[str, int] = {}
    overlaps = []
    max_parallel = [0]
    running = [0]

    def work(item):
        key, index = item
        with lock:
            sent.append((key, index))
            running[0] += 1
            max_parallel[0] = max(max_parallel[0], running[0])
            if key is not None:
                if in_flight.get(key):
                    overlaps.append(item)
                in_flight[key] = in_flight.get(key, 0) + 1
        time.sleep(delays[index] / 2000)
        with lock:
            running[0] -= 1
            if key is not None:
                in_flight[key] -= 1
        return index

    done = []
    run_ordered(
        ((k, (k, i)) for i, k in enumerate(keys)),
        work,
        concurrency=concurrency,
        on_done=lambda item, result, error: done.append(result),
    )
    assert sorted(done) == list(range(len(keys)))
    assert not overlaps
    assert max_parallel[0] <= concurrency
    for key in {k for k in keys if k is not None}:
        assert [i for k, i in sent if k == key] == [i for i, k in enumerate(keys) if k == key]


def test_errors_reach_on_done_and_the_run_continues():
    results = []

    def work(i):
        if i == 2:
            raise OSError("connection refused")
        return i

    run_ordered(
        ((None, i) for i in range(5)),
        work,
        concurrency=2,
        on_done=lambda i, r, e: results.append((i, r, type(e).__name__ if e else None)),
    )
    assert sorted(results) == [(0, 0, None), (1, 1, None), (2, None, "OSError"), (3, 3, None), (4, 4, None)]


def test_failing_on_done_stops_and_raises():
    def on_done(i, r, e):
        if i == 1:
            raise RuntimeError("store full")

    with pytest.raises(RuntimeError, match="store full"):
        run_ordered(((None, i) for i in range(100)), lambda i: i, concurrency=1, on_done=on_done)


def test_pacing_offsets_release_items_in_order():
    released = []
    run_ordered(
        (("k", i) for i in range(3)),
        lambda i: released.append(i),
        concurrency=2,
        due=lambda i: i * 0.01,
    )
    assert released == [0, 1, 2]


def test_stop_event_ends_the_run_early():
    stop = threading.Event()
    seen = []

    def work(i):
        seen.append(i)
        if i == 3:
            stop.set()

    run_ordered((("k", i) for i in range(1000)), work, concurrency=2, stop=stop)
    assert seen == [0, 1, 2, 3]
