import pytest

from harness.replay.pacing import Pace, Pacer, parse_pace, schedule


def test_parse_pace_forms():
    assert parse_pace("original") == Pace("original")
    assert parse_pace("max") == Pace("max")
    assert parse_pace(None) == Pace("max")
    assert parse_pace("x10") == Pace("factor", 10.0)
    assert parse_pace("X2.5") == Pace("factor", 2.5)
    assert parse_pace(None, rate=50) == Pace("rate", 50.0)


@pytest.mark.parametrize("bad", ["fast", "x0", "x-1", "10", "xabc", ""])
def test_parse_pace_rejects_with_reason(bad):
    if bad == "":
        assert parse_pace(bad) == Pace("max")
        return
    with pytest.raises(ValueError, match="--pace"):
        parse_pace(bad)


def test_rate_must_be_positive_and_not_mixed_with_factor():
    with pytest.raises(ValueError, match="positive"):
        parse_pace(None, rate=0)
    with pytest.raises(ValueError, match="cannot be combined"):
        parse_pace("x5", rate=10)


def test_original_keeps_captured_gaps():
    ts = [1000.0, 1000.5, 1003.5, 1003.5, 1010.0]
    assert schedule(Pace("original"), ts) == [0.0, 0.5, 3.5, 3.5, 10.0]


def test_factor_divides_gaps():
    ts = [50.0, 52.0, 60.0]
    assert schedule(Pace("factor", 4), ts) == [0.0, 0.5, 2.5]


def test_rate_ignores_timestamps():
    assert schedule(Pace("rate", 4), [None, None, None]) == [0.0, 0.25, 0.5]


def test_max_is_always_now():
    assert schedule(Pace("max"), [5.0, None, 1.0]) == [None, None, None]


def test_clock_stepping_back_never_reorders():
    assert schedule(Pace("original"), [10.0, 12.0, 11.0, 13.0]) == [0.0, 2.0, 2.0, 3.0]


def test_original_without_timestamp_is_a_clear_error():
    pacer = Pacer(Pace("original"))
    pacer.due(1.0)
    with pytest.raises(ValueError, match="message 2 has no captured timestamp"):
        pacer.due(None)


def test_str_round_trips_for_reports():
    assert str(Pace("factor", 10)) == "x10"
    assert str(parse_pace(str(Pace("factor", 10)))) == "x10"


def test_rate_with_original_conflicts():
    with pytest.raises(ValueError, match="cannot be combined"):
        parse_pace("original", rate=10)
