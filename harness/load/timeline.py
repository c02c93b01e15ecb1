"""What a load run measured, over time and in total (sans-IO: plain counters, no locust here).

Every request a user makes is added once (`add`): its name (the message type, the medical-insurance
`infno`, the FHIR interaction, the SOAP action), its response time, and its failure reason if it failed.
Requests fall into buckets of `interval_s` seconds keyed by wall-clock time, so the buckets of several
locust workers (on one machine or several) merge by adding them up; each bucket keeps a response-time
histogram per name, rounded like locust's own statistics (1 ms below 100 ms, 10 ms below 1 s, 100 ms
below 10 s, then 1 s), from which percentiles for any bucket or the whole run follow.

Open-model runs also record, per bucket, the arrivals scheduled and started, the largest backlog
(arrivals due but not yet started) and how long arrivals waited for a free connection.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Recorder", "Stat", "histogram_percentile", "round_ms"]

MAX_BUCKETS = 720
"""The interval is chosen so that a run has at most this many buckets (a 12-hour soak: one a minute)."""


def bucket_interval(duration_s: float) -> int:
    """Seconds per bucket: 1 for runs up to 12 minutes, longer ones get coarser buckets."""
    return max(1, math.ceil(duration_s / MAX_BUCKETS))


def round_ms(ms: float) -> int:
    """Locust's rounding of response times, so both tools' percentiles agree."""
    if ms < 100:
        return round(ms)
    if ms < 1000:
        return round(ms, -1)
    if ms < 10000:
        return round(ms, -2)
    return round(ms, -3)


def histogram_percentile(hist: Mapping[int, int], p: float) -> float | None:
    """The p-th percentile (0-100) of a rounded-ms histogram: the smallest value with p% at or below."""
    total = sum(hist.values())
    if not total:
        return None
    rank = max(1, math.ceil(total * p / 100.0))
    seen = 0
    for value in sorted(hist):
        seen += hist[value]
        if seen >= rank:
            return float(value)
    return float(max(hist))  # pragma: no cover - rank <= total


@dataclass(slots=True)
class Stat:
    """Requests of one name (or all) in one bucket (or the whole run)."""

    count: int = 0
    failures: int = 0
    total_ms: float = 0.0
    max_ms: float = 0.0
    bytes: int = 0
    hist: Counter = field(default_factory=Counter)

    def add(self, ms: float, length: int, failed: bool) -> None:
        self.count += 1
        self.failures += failed
        self.total_ms += ms
        if ms > self.max_ms:
            self.max_ms = ms
        self.bytes += length
        self.hist[round_ms(ms)] += 1

    def merge(self, other: Stat) -> None:
        self.count += other.count
        self.failures += other.failures
        self.total_ms += other.total_ms
        self.max_ms = max(self.max_ms, other.max_ms)
        self.bytes += other.bytes
        self.hist.update(other.hist)

    def percentile(self, p: float) -> float | None:
        return histogram_percentile(self.hist, p)

    def summary(self, seconds: float | None = None) -> dict[str, Any]:
        out = {
            "requests": self.count,
            "failures": self.failures,
            "error_rate": self.failures / self.count if self.count else 0.0,
            "mean_ms": self.total_ms / self.count if self.count else None,
            "p50_ms": self.percentile(50),
            "p90_ms": self.percentile(90),
            "p95_ms": self.percentile(95),
            "p99_ms": self.percentile(99),
            "max_ms": self.max_ms if self.count else None,
            "bytes": self.bytes,
        }
        if seconds:
            out["rate"] = self.count / seconds
        return out

    def to_json(self) -> list:
        return [self.count, self.failures, self.total_ms, self.max_ms, self.bytes, dict(self.hist)]

    @classmethod
    def from_json(cls, data: list) -> Stat:
        count, failures, total_ms, max_ms, size, hist = data
        return cls(count, failures, total_ms, max_ms, size, Counter({int(k): v for k, v in hist.items()}))


@dataclass(slots=True)
class OpenStat:
    """The open model's arrivals in one bucket."""

    scheduled: int = 0
    started: int = 0
    backlog_max: int = 0
    wait: Counter = field(default_factory=Counter)
    """Rounded ms an arrival waited between its scheduled time and its start."""

    def merge(self, other: OpenStat) -> None:
        self.scheduled += other.scheduled
        self.started += other.started
        # backlogs of several workers add up (each has its own queue); the sum of maxima bounds it
        self.backlog_max += other.backlog_max
        self.wait.update(other.wait)

    def to_json(self) -> list:
        return [self.scheduled, self.started, self.backlog_max, dict(self.wait)]

    @classmethod
    def from_json(cls, data: list) -> OpenStat:
        scheduled, started, backlog, wait = data
        return cls(scheduled, started, backlog, Counter({int(k): v for k, v in wait.items()}))


class Recorder:
    """Buckets of requests (and open-model arrivals) by time; mergeable across processes."""

    def __init__(self, interval_s: int = 1) -> None:
        self.interval = max(1, int(interval_s))
        self.buckets: dict[int, dict[str, Stat]] = {}
        self.open: dict[int, OpenStat] = {}
        self.errors: Counter[tuple[str, str]] = Counter()
        self.kinds: dict[str, str] = {}
        self.late_acks = 0
        self.users: dict[int, int] = {}
        """Users running, per bucket (the largest count seen in it); kept where the run is steered."""

    def _key(self, now: float) -> int:
        return int(now // self.interval) * self.interval

    # -- recording ------------------------------------------------------------------------------

    def add(self, name: str, kind: str, ms: float, length: int, error: str | None, now: float) -> None:
        bucket = self.buckets.get(key := self._key(now))
        if bucket is None:
            bucket = self.buckets[key] = {}
        stat = bucket.get(name)
        if stat is None:
            stat = bucket[name] = Stat()
            self.kinds.setdefault(name, kind)
        stat.add(ms, length, error is not None)
        if error is not None:
            self.errors[(name, error)] += 1

    def note_users(self, now: float, count: int) -> None:
        key = self._key(now)
        self.users[key] = max(self.users.get(key, 0), count)

    def open_bucket(self, now: float) -> OpenStat:
        stat = self.open.get(key := self._key(now))
        if stat is None:
            stat = self.open[key] = OpenStat()
        return stat

    # -- moving between processes -------------------------------------------------------------------

    def drain(self) -> dict[str, Any]:
        """Everything recorded since the last drain, as JSON-able data; the recorder starts empty again."""
        data = self.to_json()
        self.buckets, self.open, self.errors, self.late_acks = {}, {}, Counter(), 0
        return data

    def to_json(self) -> dict[str, Any]:
        return {
            "interval": self.interval,
            "buckets": {str(k): {n: s.to_json() for n, s in v.items()} for k, v in self.buckets.items()},
            "open": {str(k): v.to_json() for k, v in self.open.items()},
            "errors": [[n, e, c] for (n, e), c in self.errors.items()],
            "kinds": dict(self.kinds),
            "late_acks": self.late_acks,
        }

    def merge(self, data: Mapping[str, Any]) -> None:
        for key, names in data.get("buckets", {}).items():
            bucket = self.buckets.setdefault(int(key), {})
            for name, raw in names.items():
                stat = Stat.from_json(raw)
                if name in bucket:
                    bucket[name].merge(stat)
                else:
                    bucket[name] = stat
        for key, raw in data.get("open", {}).items():
            self.open_bucket(float(key)).merge(OpenStat.from_json(raw))
        for name, error, count in data.get("errors", []):
            self.errors[(name, error)] += count
        for name, kind in data.get("kinds", {}).items():
            self.kinds.setdefault(name, kind)
        self.late_acks += data.get("late_acks", 0)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Recorder:
        rec = cls(data.get("interval", 1))
        rec.merge(data)
        return rec

    # -- reading ------------------------------------------------------------------------------------

    def names(self) -> list[str]:
        return sorted({n for b in self.buckets.values() for n in b})

    def total(
        self, names: Iterable[str] | None = None, since: float | None = None, until: float | None = None
    ) -> Stat:
        """Every bucket's requests (of `names`), or those of the buckets starting in [since, until)."""
        wanted = set(names) if names is not None else None
        out = Stat()
        first = None if since is None else self._key(since)
        last = None if until is None else self._key(until)
        for key, bucket in self.buckets.items():
            if (first is not None and key < first) or (last is not None and key >= last):
                continue
            for name, stat in bucket.items():
                if wanted is None or name in wanted:
                    out.merge(stat)
        return out

    def open_total(self) -> OpenStat:
        out = OpenStat()
        backlog = 0
        for stat in self.open.values():
            backlog = max(backlog, stat.backlog_max)
            out.merge(stat)
        out.backlog_max = backlog
        return out

    def span(self) -> tuple[int, int] | None:
        keys = list(self.buckets) + list(self.open)
        if not keys:
            return None
        return min(keys), max(keys) + self.interval

    def series(self, start: float, end: float) -> list[dict[str, Any]]:
        """One row per bucket from start to end (empty buckets included): rates, percentiles, errors."""
        rows = []
        first = self._key(start)
        key = first
        while key < end:
            bucket = self.buckets.get(key, {})
            stat = Stat()
            failures_by_name = {}
            for name, s in bucket.items():
                stat.merge(s)
                if s.failures:
                    failures_by_name[name] = s.failures
            row: dict[str, Any] = {
                "t": key - first,
                "at": key,
                "requests": stat.count,
                "failures": stat.failures,
                "rate": stat.count / self.interval,
                "failure_rate": stat.failures / self.interval,
                "p50_ms": stat.percentile(50),
                "p95_ms": stat.percentile(95),
                "p99_ms": stat.percentile(99),
                "failures_by_name": failures_by_name,
                "users": self.users.get(key),
            }
            op = self.open.get(key)
            if op is not None:
                row.update(
                    scheduled=op.scheduled,
                    started=op.started,
                    backlog=op.backlog_max,
                    target_rate=op.scheduled / self.interval,
                )
            rows.append(row)
            key += self.interval
        return rows
