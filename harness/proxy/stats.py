"""Live counters of one channel, incremented by the proxy and read by the admin API and /metrics.

Plain integer attributes and a fixed-bucket latency histogram: incrementing is an attribute add on the
proxy's per-message path (no lock, no prometheus_client call); the admin API turns a snapshot into JSON
or Prometheus families only when someone asks.
"""

from __future__ import annotations

import bisect
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


class ChannelStats:
    """Counters of one channel. Single-writer (the reactor thread); readers take a snapshot."""

    __slots__ = (*COUNTERS, "open_connections", "_buckets", "latency_sum_s", "latency_count")

    def __init__(self) -> None:
        for name in COUNTERS:
            setattr(self, name, 0)
        self.open_connections = 0
        """Sender connections open now (a gauge: the proxy adds on connect, subtracts on close)."""
        self._buckets = [0] * (len(LATENCY_BUCKETS_S) + 1)
        self.latency_sum_s = 0.0
        self.latency_count = 0

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
        out: list[tuple[str, int]] = []
        total = 0
        for bound, count in zip((*LATENCY_BUCKETS_S, float("inf")), self._buckets, strict=True):
            total += count
            out.append(("+Inf" if bound == float("inf") else repr(bound), total))
        return out, self.latency_sum_s
