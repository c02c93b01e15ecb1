"""Live counters of one channel, incremented by the proxy and read by the admin API and /metrics.

Plain integer attributes and a fixed-bucket latency histogram: incrementing is an attribute add on the
proxy's per-message path (no lock, no prometheus_client call); the admin API turns a snapshot into JSON
or Prometheus families only when someone asks. Per message type: one small dict per channel (bounded by
MAX_MESSAGE_TYPES) of list counters. What is in flight and which upstreams are in use is asked of the
channel at scrape time (`live`), so the message path keeps no gauges.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
"""Upper bounds (seconds) of the latency histogram; a last +Inf bucket is implied."""

COUNTERS = (
    "connections",
    "messages",
    "ok",
    "nak",
    "timeouts",
    "faults",
    "malformed",
    "upstream_down",
    "late_acks",
    "bad_acks",
    "ambiguous_acks",
    "no_ack_expected",
    "errors",
    "refused_connections",
    "bytes_in",
    "bytes_out",
)
"""`bytes_in`/`bytes_out`: bytes the channel received / sent on its sockets, sender and upstream sides."""

OUTCOME_COUNTERS = {
    "ok": "ok",
    "nak": "nak",
    "timeout": "timeouts",
    "fault": "faults",
    "malformed": "malformed",
    "upstream_down": "upstream_down",
    "late_ack": "late_acks",
    "bad_ack": "bad_acks",
    "ambiguous_ack": "ambiguous_acks",
    "no_ack_expected": "no_ack_expected",
    "error": "errors",
}
"""Exchange outcome -> the counter it bumps (see harness.exchange: ok nak timeout ... error)."""


TYPE_OUTCOMES = tuple(OUTCOME_COUNTERS)
"""Outcomes counted per message type (their label values in /metrics: the exchange's own outcome names)."""
_TYPE_OUTCOME_INDEX = {name: i for i, name in enumerate(TYPE_OUTCOMES)}
_ERROR_INDEX = _TYPE_OUTCOME_INDEX["error"]
MAX_MESSAGE_TYPES = 50
"""Message types counted apart per channel; later ones are counted together under OTHER_TYPE, so a sender
that invents types (or a fuzzer) cannot grow /metrics without bound."""
MAX_TYPE_LABEL = 64
"""Characters of a message type kept as its label (MSH-9 is the sender's to fill)."""
OTHER_TYPE = "other"
NO_TYPE = "none"
"""The message_type label of exchanges without one (a malformed frame, a refused connection)."""


class TypeStats:
    """One message type's outcome counts and latency histogram on one channel."""

    __slots__ = ("outcomes", "buckets", "latency_sum_s", "latency_count")

    def __init__(self) -> None:
        self.outcomes = [0] * len(TYPE_OUTCOMES)
        self.buckets = [0] * (len(LATENCY_BUCKETS_S) + 1)
        self.latency_sum_s = 0.0
        self.latency_count = 0

    def histogram(self) -> tuple[list[tuple[str, int]], float]:
        return _cumulative(self.buckets), self.latency_sum_s


class ChannelStats:
    """Counters of one channel. Single-writer (the reactor thread); readers take a snapshot."""

    __slots__ = (*COUNTERS, "open_connections", "_buckets", "latency_sum_s", "latency_count", "by_type",
                 "upstream_connects", "live")  # fmt: skip

    def __init__(self) -> None:
        for name in COUNTERS:
            setattr(self, name, 0)
        self.open_connections = 0
        """Sender connections open now (a gauge: the proxy adds on connect, subtracts on close)."""
        self._buckets = [0] * (len(LATENCY_BUCKETS_S) + 1)
        self.latency_sum_s = 0.0
        self.latency_count = 0
        self.by_type: dict[str, TypeStats] = {}
        """Per message type (at most MAX_MESSAGE_TYPES, then OTHER_TYPE): fed by `finished`."""
        self.upstream_connects: dict[str, int] = {}
        """Upstream connections opened, per upstream address (bounded by the channel's upstream list)."""
        self.live: Callable[[], LiveState] | None = None
        """Set by channels that can say, at scrape time, what is in flight and which upstreams are in use."""

    # --- what the proxy calls --------------------------------------------------------------------

    def connection_opened(self) -> None:
        self.connections += 1
        self.open_connections += 1

    def connection_closed(self) -> None:
        self.open_connections = max(0, self.open_connections - 1)

    def outcome(self, outcome: str) -> None:
        """Count one finished exchange by its outcome (unknown outcomes count as errors)."""
        self.messages += 1
        name = OUTCOME_COUNTERS.get(outcome, "errors")
        setattr(self, name, getattr(self, name) + 1)

    def observe_latency(self, seconds: float) -> None:
        """One exchange's request-to-reply time."""
        self._buckets[bisect.bisect_left(LATENCY_BUCKETS_S, seconds)] += 1
        self.latency_sum_s += seconds
        self.latency_count += 1

    def finished(self, outcome: str, message_type: str | None, latency_s: float | None = None) -> None:
        """One finished exchange: the channel's counters and its message type's (a dict lookup, list adds)."""
        self.messages += 1
        name = OUTCOME_COUNTERS.get(outcome, "errors")
        setattr(self, name, getattr(self, name) + 1)
        key = message_type or NO_TYPE
        if len(key) > MAX_TYPE_LABEL:
            key = key[:MAX_TYPE_LABEL]
        by_type = self.by_type.get(key)
        if by_type is None:
            by_type = self._new_type(key)
        by_type.outcomes[_TYPE_OUTCOME_INDEX.get(outcome, _ERROR_INDEX)] += 1
        if latency_s is not None:
            i = bisect.bisect_left(LATENCY_BUCKETS_S, latency_s)
            self._buckets[i] += 1
            self.latency_sum_s += latency_s
            self.latency_count += 1
            by_type.buckets[i] += 1
            by_type.latency_sum_s += latency_s
            by_type.latency_count += 1

    def _new_type(self, message_type: str) -> TypeStats:
        if len(self.by_type) >= MAX_MESSAGE_TYPES:
            message_type = OTHER_TYPE
            if message_type in self.by_type:
                return self.by_type[message_type]
        stats = self.by_type[message_type] = TypeStats()
        return stats

    def upstream_connected(self, address: str) -> None:
        self.upstream_connects[address] = self.upstream_connects.get(address, 0) + 1

    # --- what the admin API reads ----------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        data: dict[str, Any] = {name: getattr(self, name) for name in COUNTERS}
        data["bytes"] = self.bytes_in + self.bytes_out
        data["open_connections"] = self.open_connections
        data["latency_count"] = self.latency_count
        data["latency_mean_ms"] = (
            round(self.latency_sum_s * 1000.0 / self.latency_count, 3) if self.latency_count else None
        )
        return data

    def histogram(self) -> tuple[list[tuple[str, int]], float]:
        """Cumulative (upper bound, count) pairs ending with +Inf, and the sum, in Prometheus's shape."""
        return _cumulative(self._buckets), self.latency_sum_s


@dataclass(frozen=True, slots=True)
class LiveState:
    """What a channel has in hand at one moment (read at scrape time, never kept up per message)."""

    in_flight: int
    """Requests forwarded to the upstream whose reply has not come yet."""
    queued: int
    """Requests received and waiting to be forwarded (stop-and-wait, back-pressure)."""
    upstreams: dict[str, int]
    """Open upstream connections per upstream address."""


def _cumulative(buckets: list[int]) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    total = 0
    for bound, count in zip((*LATENCY_BUCKETS_S, float("inf")), buckets, strict=True):
        total += count
        out.append(("+Inf" if bound == float("inf") else repr(bound), total))
    return out
