"""Business hours and the silences found in them."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from harness.inspect.business_hours import BusinessHours, silences

CST = timezone(timedelta(hours=8))


def at(day: int, hour: int, minute: int = 0) -> float:
    return datetime(2026, 3, day, hour, minute, tzinfo=CST).timestamp()  # 2026-03-02 is a Monday


def test_intervals_follow_the_days_and_clip_to_the_window():
    hours = BusinessHours.parse("08:00-18:00", "mon-fri")
    got = hours.intervals(at(2, 9), at(9, 12), CST)  # Monday 09:00 to the next Monday 12:00
    assert got[0] == (at(2, 9), at(2, 18))
    assert len(got) == 6 and got[-1] == (at(9, 8), at(9, 12))  # Mon..Fri, then next Monday; no weekend


def test_hours_past_midnight_belong_to_the_day_they_start():
    hours = BusinessHours.parse("22:00-06:00", "sat")
    assert hours.intervals(at(7, 0), at(9, 0), CST) == [(at(7, 22), at(8, 6))]


def test_all_day():
    hours = BusinessHours.parse("00:00-24:00", "all")
    assert hours.intervals(at(2, 10), at(3, 10), CST) == [(at(2, 10), at(3, 0)), (at(3, 0), at(3, 10))]
    assert hours.describe() == "00:00-24:00 every day"


def test_silences_inside_business_time_only():
    interval = [(at(2, 8), at(2, 18))]
    times = [at(2, 8, 10), at(2, 8, 20), at(2, 10, 0), at(2, 17, 50)]
    found = silences(times, interval, 30 * 60)
    assert found == [(at(2, 8, 20), at(2, 10, 0)), (at(2, 10, 0), at(2, 17, 50))]
    assert silences([], interval, 30 * 60) == [(at(2, 8), at(2, 18))]
    assert silences(times, interval, 10 * 3600) == []


@pytest.mark.parametrize(("hours", "days", "problem"), [
    ("8-18", "all", "is not HH:MM"), ("08:00", "all", "expected HH:MM-HH:MM"),
    ("08:00-25:00", "all", "time of day"),
    ("08:00-08:00", "all", "the same time"), ("08:00-18:00", "weekdays", "expected day names"),
])  # fmt: skip
def test_bad_settings_say_what_is_wrong(hours, days, problem):
    with pytest.raises(ValueError, match=problem):
        BusinessHours.parse(hours, days)
