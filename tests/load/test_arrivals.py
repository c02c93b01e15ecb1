from harness.load.arrivals import Arrivals
from harness.load.shapes import Curve, parse_shape


def constant(rate: float, duration: float = 10.0) -> Curve:
    return Curve(parse_shape("constant"), duration, rate)


def test_arrivals_come_at_the_rate_and_stop_with_the_run():
    arrivals = Arrivals(constant(10))
    times = []
    while (t := arrivals.claim()) is not None:
        times.append(t)
    assert len(times) == 100
    assert times[:3] == [0.1, 0.2, 0.30000000000000004] or [round(t, 6) for t in times[:3]] == [0.1, 0.2, 0.3]
    assert round(times[-1], 6) == 10.0


def test_workers_share_one_sequence_without_gaps_or_overlap():
    single = Arrivals(constant(37, 5))
    every = []
    while (t := single.claim()) is not None:
        every.append(round(t, 9))
    shares = [Arrivals(constant(37, 5), index, 3) for index in range(3)]
    merged = []
    for arrivals in shares:
        while (t := arrivals.claim()) is not None:
            merged.append(round(t, 9))
    assert sorted(merged) == every
    assert [a.claimed for a in shares] == [62, 62, 61]


def test_backlog_is_what_fell_due_and_nobody_took():
    arrivals = Arrivals(constant(10))
    assert arrivals.due(1.0) == 10 and arrivals.backlog(1.0) == 10
    for _ in range(4):
        arrivals.claim()
    assert arrivals.backlog(1.0) == 6
    assert arrivals.backlog(0.25) == 0  # more claimed than due: users are waiting for arrivals
    second = Arrivals(constant(10), 1, 2)
    assert second.due(1.0) == 5  # arrivals 2, 4, 6, 8, 10


def test_a_worker_index_outside_the_stride_is_refused():
    try:
        Arrivals(constant(1), 2, 2)
    except ValueError as exc:
        assert "outside 0..1" in str(exc)
    else:
        raise AssertionError("accepted")
