"""The inspection (接口巡检) itself: rows in, per channel and message type figures out, as plain data.

Sans-IO: `Inspection.feed` takes the rows `scan` reads and keeps, per channel, compact arrays (start time and
latency of each exchange, the times of failures, the upstream of each) and, per message type, the outcome
counts, latencies, sync delays and grouped failures; `result` turns them into the dict every format renders
(JSON as is, HTML, the one-page text). The arrays hold ≈40 bytes an exchange; sorting them at the end about
doubles that (a million exchanges: ≈155 MB at the peak for the whole process, docs/PERFORMANCE.md).
Percentiles are exact.

Definitions, the same everywhere:
- volume: exchanges, without stray late replies (`late_ack` rows answer an exchange already counted);
- success rate: `ok` and `no_ack_expected` over every finished exchange (`pending` ones are not finished);
- latency: request to reply of exchanges the upstream answered (`ok`, `nak`, `bad_ack`); a timeout is a
  failure, not a latency;
- sync delay: capture time minus the time the message says it was made (`message_time`); negative when the
  sender's clock runs ahead;
- upstream: the address the exchange went to (`upstream_addr`); a failover is a minute in which most
  exchanges went to another upstream than in the minute with traffic before it (a sender connection that
  stays on the backup for a while does not count as flapping): `failover` to a backup and `failback` to the
  primary when the proxy config names them, else `switch` away from the upstream that took most exchanges
  and `return` to it;
- silence: see `business_hours`.
"""

from __future__ import annotations

import bisect
import math
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from harness.exchange import SUCCESS_OUTCOMES, iso_time, percentile
from harness.inspect import scan as cols
from harness.inspect.business_hours import BusinessHours, silences
from harness.inspect.failures import reason
from harness.inspect.message_time import MessageClock

LATENCY_OUTCOMES = frozenset({"ok", "nak", "bad_ack"})
NOT_FORWARDED = frozenset({"upstream_down"})
MAX_TYPES = 200
"""Message types kept apart per channel; more are counted under '(other types)'."""
MAX_REASONS = 500
"""Distinct failure reasons kept per message type; more are counted under '(other reasons)'."""
MAX_UPSTREAMS = 32
CLOCK_AHEAD_S = 60.0
"""A message time this far after its capture time is counted as a sender clock running ahead."""
BUCKETS = (60, 300, 900, 1800, 3600, 10800, 21600, 86400)


@dataclass(frozen=True, slots=True)
class ChannelSettings:
    """What a channel's figures depend on besides its rows: when silence counts, and its upstreams' roles."""

    hours: BusinessHours
    silence_s: float
    upstreams: Sequence[str] = ()
    """The configured upstream list (primary first); empty when unknown."""


class _Type:
    __slots__ = ("outcomes", "latencies", "delays", "no_time", "failures")

    def __init__(self) -> None:
        self.outcomes: dict[str, int] = {}
        self.latencies = array("d")
        self.delays = array("d")
        self.no_time = 0
        self.failures: dict[tuple, list] = {}


class _Channel:
    __slots__ = ("kind", "times", "latencies", "fail_times", "types", "up_index", "up_times", "up_which",
                 "late_replies")  # fmt: skip

    def __init__(self, kind: str | None) -> None:
        self.kind = kind
        self.times = array("d")
        self.latencies = array("d")  # NaN where the exchange has no latency figure
        self.fail_times = array("d")
        self.types: dict[str, _Type] = {}
        self.up_index: dict[str, int] = {}
        self.up_times = array("d")
        self.up_which = array("H")
        self.late_replies = 0

    def new_type(self, mtype: str) -> _Type:
        if len(self.types) >= MAX_TYPES:
            mtype = "(other types)"
            if mtype in self.types:
                return self.types[mtype]
        group = self.types[mtype] = _Type()
        return group


class Inspection:
    """Accumulates rows (`feed`), then reports (`result`)."""

    def __init__(self, clock: MessageClock | None = None, *, top: int = 10) -> None:
        self.clock = clock or MessageClock()
        self.top = top
        self.channels: dict[str, _Channel] = {}
        self.rows = 0

    def feed(self, rows: Iterable[tuple]) -> None:
        channels = self.channels
        time_of = self.clock.time_of
        nan = math.nan
        success = SUCCESS_OUTCOMES
        timed = LATENCY_OUTCOMES
        failure = self._failure
        count = 0
        for row in rows:
            count += 1
            _, name, kind, started, latency, outcome, _, mtype, upstream, _, _, head, _, _, _ = row
            ch = channels.get(name)
            if ch is None:
                ch = channels[name] = _Channel(kind)
            if outcome == "late_ack":
                ch.late_replies += 1
                continue
            group = ch.types.get(mtype or "(none)")
            if group is None:
                group = ch.new_type(mtype or "(none)")
            outcomes = group.outcomes
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            ch.times.append(started)
            if latency is not None and outcome in timed:
                group.latencies.append(latency)
                ch.latencies.append(latency)
            else:
                ch.latencies.append(nan)
            failed = outcome not in success and outcome != "pending"
            made = time_of(kind, head)
            if made is None:
                group.no_time += 1
            else:
                group.delays.append(started - made)
            if upstream and outcome not in NOT_FORWARDED:
                which = ch.up_index.get(upstream)
                if which is None:
                    which = ch.up_index[upstream] = min(len(ch.up_index), MAX_UPSTREAMS)
                ch.up_times.append(started)
                ch.up_which.append(which)
            if failed:
                ch.fail_times.append(started)
                failure(group, row, outcome)
        self.rows += count

    @staticmethod
    def _failure(group: _Type, row: tuple, outcome: str) -> None:
        code = row[cols.ACK] if row[cols.ACK] is not None else row[cols.STATUS]
        text = reason(row[cols.KIND], row[cols.REPLY], row[cols.META], row[cols.ERROR], row[cols.CHARSET])
        key = (outcome, None if code is None else str(code), text)
        entry = group.failures.get(key)
        if entry is None:
            if len(group.failures) >= MAX_REASONS:
                key = (outcome, key[1], "(other reasons)")
                entry = group.failures.get(key)
            if entry is None:
                entry = group.failures[key] = [0, row[cols.ID], row[cols.STARTED]]
        entry[0] += 1
        if row[cols.ID] is not None and (entry[1] is None or row[cols.ID] < entry[1]):
            entry[1] = row[cols.ID]
        entry[2] = max(entry[2], row[cols.STARTED])

    def span(self) -> tuple[float | None, float | None]:
        """The first and last start time fed (None, None before any)."""
        firsts = [min(ch.times) for ch in self.channels.values() if ch.times]
        lasts = [max(ch.times) for ch in self.channels.values() if ch.times]
        return (min(firsts), max(lasts)) if firsts else (None, None)

    # -- figures -------------------------------------------------------------------------------------

    def result(
        self,
        since: float,
        until: float,
        settings: Callable[[str], ChannelSettings],
        *,
        expected: Sequence[str] = (),
        tz: tzinfo | None = None,
    ) -> dict[str, Any]:
        """Figures for the window [since, until); `expected` channels are reported even with no traffic."""
        bucket = bucket_for(until - since)
        origin = _align(since, bucket, tz)
        names = list(self.channels) + [n for n in expected if n not in self.channels]
        channels = [
            self._channel(
                name,
                self.channels.get(name) or _Channel(None),
                since,
                until,
                bucket,
                origin,
                settings(name),
                tz,
            )
            for name in sorted(names)
        ]
        return {
            "window": {
                "since": iso_time(since), "until": iso_time(until), "since_local": _local_text(since, tz),
                "until_local": _local_text(until, tz), "seconds": round(until - since, 3), "bucket_s": bucket,
            },
            "totals": _totals(channels),
            "channels": channels,
        }  # fmt: skip

    def _channel(
        self,
        name: str,
        ch: _Channel,
        since: float,
        until: float,
        bucket: int,
        origin: float,
        settings: ChannelSettings,
        tz: tzinfo | None,
    ) -> dict[str, Any]:
        types = [_type_figures(mtype, group, self.top_for_types, tz) for mtype, group in ch.types.items()]
        types.sort(key=lambda t: (-t["exchanges"], t["message_type"]))
        outcomes: dict[str, int] = {}
        failures: dict[tuple, list] = {}
        delays = array("d")
        no_time = 0
        for group in ch.types.values():
            for outcome, n in group.outcomes.items():
                outcomes[outcome] = outcomes.get(outcome, 0) + n
            for key, (n, example, last) in group.failures.items():
                entry = failures.setdefault(key, [0, example, last])
                entry[0] += n
                if example is not None and (entry[1] is None or example < entry[1]):
                    entry[1] = example
                entry[2] = max(entry[2], last)
            delays.extend(group.delays)
            no_time += group.no_time
        times, by_time = _by_time(ch.times, ch.latencies)
        latencies = sorted(v for v in by_time if v == v)
        series, hourly = _series(ch, times, by_time, bucket, origin, until, tz)
        hours = (until - since) / 3600.0
        peak = max(range(len(hourly)), key=hourly.__getitem__) if hourly else None
        gaps = silences(times, settings.hours.intervals(since, until, tz), settings.silence_s)
        upstreams, events = _upstreams(ch, settings.upstreams, tz)
        exchanges = len(ch.times)
        return {
            "channel": name,
            "kind": ch.kind,
            "exchanges": exchanges,
            "late_replies": ch.late_replies,
            "per_hour": {
                "mean": round(exchanges / hours, 2) if hours > 0 else None,
                "peak": hourly[peak] if peak is not None else 0,
                "peak_hour": _local_text(_align(since, 3600, tz) + peak * 3600, tz)
                if peak is not None
                else None,
            },
            **_rates(outcomes),
            "latency_ms": _spread(latencies),
            "sync_delay_s": _delay_spread(delays, no_time),
            "upstreams": upstreams,
            "failovers": events,
            "failover_count": sum(1 for e in events if e["kind"] in ("failover", "switch")),
            "business_hours": settings.hours.describe(),
            "silence_minutes": round(settings.silence_s / 60.0, 2),
            "silences": [
                {
                    "from": iso_time(a),
                    "to": iso_time(b),
                    "from_local": _local_text(a, tz),
                    "to_local": _local_text(b, tz),
                    "minutes": round((b - a) / 60.0, 1),
                }
                for a, b in gaps
            ],  # fmt: skip
            "failures_top": _top(failures, self.top, tz),
            "message_types": types,
            "series": series,
        }

    @property
    def top_for_types(self) -> int:
        return min(self.top, 3)


def bucket_for(span_s: float) -> int:
    """Chart bucket: at most ≈200 a chart, and hours once the window is two days or more (volume per hour)."""
    for b in BUCKETS:
        if span_s / b <= 200 and (b >= 3600 or span_s < 2 * 86400):
            return b
    return BUCKETS[-1]


def _align(t: float, step: int, tz: tzinfo | None) -> float:
    """The start of the local-time step (minute, hour, day) that holds t."""
    offset = _offset(t, tz)
    return math.floor((t + offset) / step) * step - offset


def _offset(t: float, tz: tzinfo | None) -> float:
    moment = datetime.fromtimestamp(t, tz)
    delta = (moment if tz is not None else moment.astimezone()).utcoffset()
    return delta.total_seconds() if delta else 0.0


def _local_text(t: float, tz: tzinfo | None) -> str:
    moment = datetime.fromtimestamp(t, tz)
    if tz is None:
        moment = moment.astimezone()
    return moment.isoformat(timespec="seconds")


def _rates(outcomes: dict[str, int]) -> dict[str, Any]:
    finished = sum(n for o, n in outcomes.items() if o != "pending")
    ok = sum(outcomes.get(o, 0) for o in SUCCESS_OUTCOMES)
    return {
        "outcomes": dict(sorted(outcomes.items(), key=lambda kv: (-kv[1], kv[0]))),
        "success": ok,
        "failures": finished - ok,
        "pending": outcomes.get("pending", 0),
        "success_rate": round(100.0 * ok / finished, 3) if finished else None,
    }


def _spread(sorted_values: Sequence[float]) -> dict[str, Any]:
    def r(v: float | None) -> float | None:
        return None if v is None else round(v, 3)

    return {
        "count": len(sorted_values),
        "p50": r(percentile(sorted_values, 50)),
        "p95": r(percentile(sorted_values, 95)),
        "p99": r(percentile(sorted_values, 99)),
        "max": r(sorted_values[-1]) if sorted_values else None,
    }


def _delay_spread(delays: Sequence[float], no_time: int) -> dict[str, Any]:
    values = sorted(delays)
    out = _spread(values)
    out["min"] = round(values[0], 3) if values else None
    out["clock_ahead"] = bisect.bisect_left(values, -CLOCK_AHEAD_S)
    out["no_time"] = no_time
    return out


def _type_figures(mtype: str, group: _Type, top: int, tz: tzinfo | None) -> dict[str, Any]:
    return {
        "message_type": mtype,
        "exchanges": sum(group.outcomes.values()),
        **_rates(group.outcomes),
        "latency_ms": _spread(sorted(group.latencies)),
        "sync_delay_s": _delay_spread(group.delays, group.no_time),
        "failures_top": _top(group.failures, top, tz),
    }


def _top(failures: dict[tuple, list], n: int, tz: tzinfo | None) -> list[dict[str, Any]]:
    ranked = sorted(failures.items(), key=lambda kv: (-kv[1][0], kv[1][1] if kv[1][1] is not None else 0))
    return [
        {"outcome": outcome, "code": code, "reason": text, "count": count, "example_id": example,
         "last": iso_time(last), "last_local": _local_text(last, tz)}
        for (outcome, code, text), (count, example, last) in ranked[:n]
    ]  # fmt: skip


def _by_time(times: Sequence[float], *columns: Sequence) -> tuple[list, ...]:
    """times sorted, and the columns put in the same order (captures arrive nearly in time order: the sort
    is close to linear)."""
    order = sorted(range(len(times)), key=times.__getitem__)
    return tuple([column[i] for i in order] for column in (times, *columns))


def _counts(sorted_times: Sequence[float], origin: float, step: float, n: int) -> list[int]:
    """How many of the sorted times fall in each of n steps from origin."""
    edges = [bisect.bisect_left(sorted_times, origin + k * step) for k in range(n + 1)]
    return [edges[k + 1] - edges[k] for k in range(n)]


def _series(
    ch: _Channel, times: list[float], latencies: list[float], bucket: int, origin: float, until: float,
    tz: tzinfo | None,
):  # fmt: skip
    """Volume, failures, error rate and p95 per chart bucket; and volume per local hour (times sorted, and
    the latencies in the same order)."""
    n = max(0, math.ceil((until - origin) / bucket))
    volume = _counts(times, origin, bucket, n)
    failed = _counts(sorted(ch.fail_times), origin, bucket, n)
    hour_origin = _align(origin, 3600, tz)
    hourly = _counts(times, hour_origin, 3600, max(0, math.ceil((until - hour_origin) / 3600)))
    p95 = []
    at = bisect.bisect_left(times, origin)
    for count in volume:
        values = sorted(v for v in latencies[at : at + count] if v == v)
        p95.append(round(percentile(values, 95), 3) if values else None)
        at += count
    series = {
        "start": origin,
        "start_iso": iso_time(origin),
        "bucket_s": bucket,
        "volume": volume,
        "failed": failed,
        "error_rate": [round(100.0 * f / v, 2) if v else None for v, f in zip(volume, failed, strict=True)],
        "p95_ms": p95,
    }
    return series, hourly


def _upstreams(ch: _Channel, configured: Sequence[str], tz: tzinfo | None):
    """Exchanges per upstream with its role, and the failovers between them (by each minute's main one)."""
    addresses = {i: a for a, i in ch.up_index.items()}
    if len(ch.up_index) > MAX_UPSTREAMS:
        addresses[MAX_UPSTREAMS] = "(other upstreams)"
    times, which = _by_time(ch.up_times, ch.up_which)
    counts = Counter(which)

    def role(address: str) -> str | None:
        if not configured:
            return None
        if address == configured[0]:
            return "primary"
        return "backup" if address in configured[1:] else "other"

    total = len(times)
    rows = []
    for i, count in counts.most_common():
        first, last = times[which.index(i)], times[total - 1 - which[::-1].index(i)]
        rows.append({
            "address": addresses[i], "role": role(addresses[i]), "exchanges": count,
            "share": round(100.0 * count / total, 2), "first": iso_time(first), "last": iso_time(last),
            "first_local": _local_text(first, tz), "last_local": _local_text(last, tz),
        })  # fmt: skip
    usual = counts.most_common(1)[0][0] if counts else None
    events: list[dict[str, Any]] = []
    previous: int | None = None
    at = 0
    while at < total:  # one step a minute with traffic
        end = bisect.bisect_left(times, (math.floor(times[at] / 60) + 1) * 60, at)
        per = Counter(which[at:end])
        top = max(per.values())
        main = next(w for w in which[at:end] if per[w] == top)  # ties: the first to answer in the minute
        if previous is not None and main != previous:
            to, before = addresses[main], addresses[previous]
            to_role = role(to)
            if to_role is None:  # no config: away from the upstream that took most exchanges, or back to it
                kind = "return" if main == usual else "switch"
            else:
                kind = "failback" if to_role == "primary" else "failover"
            moment = times[at + which[at:end].index(main)]
            events.append({
                "at": iso_time(moment), "at_local": _local_text(moment, tz), "from": before, "to": to,
                "from_role": role(before), "to_role": to_role, "kind": kind,
            })  # fmt: skip
        previous = main
        at = end
    return rows, events


def _totals(channels: list[dict[str, Any]]) -> dict[str, Any]:
    outcomes: dict[str, int] = {}
    for ch in channels:
        for o, n in ch["outcomes"].items():
            outcomes[o] = outcomes.get(o, 0) + n
    return {
        "channels": len(channels),
        "exchanges": sum(ch["exchanges"] for ch in channels),
        **_rates(outcomes),
        "silences": sum(len(ch["silences"]) for ch in channels),
        "failovers": sum(ch["failover_count"] for ch in channels),
    }
