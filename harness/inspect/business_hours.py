"""Business hours and silences: stretches of business time in which a channel carried no exchange at all.

A feed that stops (an interface engine's business service disabled, a sender hung) shows up as silence, not as
errors. Only business time counts: a night without outpatient traffic is not an interruption. Hours are local
clock times (`08:00-18:00`; `22:00-06:00` runs past midnight; `00:00-24:00` is all day) on the listed days.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class BusinessHours:
    start_min: int
    """Minutes after midnight when business starts."""
    end_min: int
    """Minutes after midnight when it ends (1440: midnight; below start_min: the next day)."""
    days: frozenset[int]
    """Weekdays on which business starts (0 = Monday)."""

    @classmethod
    def parse(cls, hours: str = "08:00-18:00", days: str = "mon-sun") -> BusinessHours:
        """From `HH:MM-HH:MM` and days as `mon-fri`, `mon,wed,sat` or `all`; ValueError says what is wrong."""
        start_text, sep, end_text = str(hours).strip().partition("-")
        if not sep:
            raise ValueError(f"business hours {hours!r}: expected HH:MM-HH:MM, e.g. 08:00-18:00")
        start, end = _minutes(start_text, hours), _minutes(end_text, hours)
        if start == end:
            raise ValueError(f"business hours {hours!r}: start and end are the same time")
        return cls(start, end, _days(days))

    def describe(self) -> str:
        def hm(m: int) -> str:
            return f"{m // 60:02d}:{m % 60:02d}"

        names = [DAYS[d] for d in sorted(self.days)]
        span = "every day" if len(names) == 7 else ",".join(names)
        return f"{hm(self.start_min)}-{hm(self.end_min)} {span}"

    def intervals(self, since: float, until: float, tz: tzinfo | None = None) -> list[tuple[float, float]]:
        """Business time inside [since, until) as (start, end) epoch pairs, in order."""
        out: list[tuple[float, float]] = []
        day = _local(since, tz).date() - timedelta(days=1)  # yesterday's shift may run past midnight
        last = _local(until, tz).date()
        while day <= last:
            if day.weekday() in self.days:
                a = _at(day, self.start_min, tz)
                end_day = day if self.end_min > self.start_min else day + timedelta(days=1)
                b = _at(end_day, self.end_min, tz)
                a, b = max(a, since), min(b, until)
                if a < b:
                    out.append((a, b))
            day += timedelta(days=1)
        return out


def silences(
    times: Sequence[float], intervals: Sequence[tuple[float, float]], threshold_s: float
) -> list[tuple[float, float]]:
    """Stretches of at least threshold_s inside the intervals with no time in `times` (sorted ascending)."""
    out: list[tuple[float, float]] = []
    for a, b in intervals:
        i = bisect.bisect_left(times, a)
        previous = a
        while i < len(times) and times[i] < b:
            if times[i] - previous >= threshold_s:
                out.append((previous, times[i]))
            previous = times[i]
            i += 1
        if b - previous >= threshold_s:
            out.append((previous, b))
    return out


def _minutes(text: str, whole: str) -> int:
    h, sep, m = text.strip().partition(":")
    if not sep or not h.isdigit() or not m.isdigit() or len(m) != 2:
        raise ValueError(f"business hours {whole!r}: {text.strip()!r} is not HH:MM")
    value = int(h) * 60 + int(m)
    if int(m) > 59 or value > 1440:
        raise ValueError(f"business hours {whole!r}: {text.strip()!r} is not a time of day (00:00 to 24:00)")
    return value


def _days(text: str) -> frozenset[int]:
    value = str(text).strip().lower()
    if value in ("all", "every day", "daily", "mon-sun"):
        return frozenset(range(7))
    found: set[int] = set()
    for part in value.split(","):
        first, sep, last = part.strip().partition("-")
        try:
            a = DAYS.index(first.strip()[:3])
            b = DAYS.index(last.strip()[:3]) if sep else a
        except ValueError:
            raise ValueError(
                f"business days {text!r}: expected day names (mon tue wed thu fri sat sun) as mon-fri or "
                "mon,wed,sat, or all"
            ) from None
        d = a
        while True:
            found.add(d)
            if d == b:
                break
            d = (d + 1) % 7
    return frozenset(found)


def _local(epoch: float, tz: tzinfo | None) -> datetime:
    return datetime.fromtimestamp(epoch, tz)


def _at(day: date, minutes: int, tz: tzinfo | None) -> float:
    extra, minutes = divmod(minutes, 1440)
    moment = datetime.combine(day + timedelta(days=extra), time(minutes // 60, minutes % 60), tzinfo=tz)
    return moment.timestamp()
