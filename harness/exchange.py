"""The exchange: one request and its response (or their absence) on one channel.

Capture writes exchanges, replay reads and writes them, reports summarise them; every
protocol (MLLP, HTTP) and kind (hl7v2, fhir, soap, medins, cdc, raw) shares this one record so
those tools never branch on where an exchange came from.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from harness.codecs import KINDS as HTTP_KINDS

PROTOCOLS = ("mllp", "http")
KINDS = ("hl7v2", *HTTP_KINDS)
OUTCOMES = (
    "ok", "nak", "timeout", "upstream_down", "malformed", "fault", "late_ack", "error",
    "bad_ack", "ambiguous_ack", "no_ack_expected", "pending",
)  # fmt: skip
"""ok: accepted; nak: AE AR CE CR (HTTP: an error answer); bad_ack: a reply whose MSA-1 is empty or
unknown, or without MSA; ambiguous_ack: a reply that could belong to more than one request (never
relayed); no_ack_expected: the message asked for no acknowledgement (MSH-15/16 NE/NE); pending: the
accept ACK came and the application ACK is still awaited (completed in place when it comes)."""
SUCCESS_OUTCOMES = frozenset({"ok", "no_ack_expected"})
"""Outcomes that are not failures in summaries, replay and load results."""


@dataclass(slots=True)
class Exchange:
    id: int | None = None
    """Row id in the capture store; None until stored."""
    channel: str = ""
    protocol: str = "mllp"
    kind: str = "hl7v2"
    started_at: float = field(default_factory=time.time)
    """Epoch seconds when the request was complete at the proxy."""
    ended_at: float | None = None
    """Epoch seconds when the response was complete (or the exchange was given up); None while open."""
    latency_ms: float | None = None
    client_addr: str | None = None
    upstream_addr: str | None = None
    request: bytes = b""
    """The request exactly as received (MLLP: the frame payload, without the block characters)."""
    response: bytes | None = None
    """The response exactly as received from the upstream or sent by a fault; None when there was none."""
    outcome: str = "ok"
    ack_code: str | None = None
    """MSA-1 of `response`: the reply that ended the exchange (original mode: the ACK; enhanced mode:
    the application ACK, or the accept ACK when no application ACK follows it)."""
    accept_ack_code: str | None = None
    """Enhanced mode: MSA-1 of the accept ACK (CA) that came before the application ACK."""
    accept_response: bytes | None = None
    """Enhanced mode: the accept ACK's bytes, when an application ACK was still to follow it."""
    message_type: str | None = None
    """'ADT^A01' for HL7 v2; the kind's own operation name elsewhere."""
    control_id: str | None = None
    charset: str | None = None
    """The Python codec the request was decoded with; what `show` uses to print it."""
    fault: dict[str, Any] | None = None
    """The fault rule applied (with its id and action), None when the exchange was left alone."""
    method: str | None = None
    path: str | None = None
    status: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    """Kind-specific metadata (medins infno/infcode, FHIR interaction, SOAP action, ...)."""
    run_id: int | None = None
    original_id: int | None = None
    """For replayed exchanges: the id of the captured exchange this one re-sends."""
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    proxy: str | None = None
    """The proxy instance that captured the exchange (its config's `instance:`): several share a store."""

    def finish(self, ended_at: float | None = None) -> None:
        """Close the exchange now (or at `ended_at`) and derive its latency from the start time."""
        self.ended_at = time.time() if ended_at is None else ended_at
        self.latency_ms = max(0.0, (self.ended_at - self.started_at) * 1000.0)

    def to_json(self) -> dict[str, Any]:
        """The JSON view used by `capture list --json` and reports: everything except the bodies' bytes."""
        view: dict[str, Any] = {
            "id": self.id,
            "channel": self.channel,
            "protocol": self.protocol,
            "kind": self.kind,
            "started_at": iso_time(self.started_at),
            "ended_at": iso_time(self.ended_at) if self.ended_at is not None else None,
            "latency_ms": round(self.latency_ms, 3) if self.latency_ms is not None else None,
            "client_addr": self.client_addr,
            "upstream_addr": self.upstream_addr,
            "outcome": self.outcome,
            "ack_code": self.ack_code,
            "accept_ack_code": self.accept_ack_code,
            "message_type": self.message_type,
            "control_id": self.control_id,
            "charset": self.charset,
            "fault": self.fault,
            "run_id": self.run_id,
            "original_id": self.original_id,
            "error": self.error,
            "notes": list(self.notes),
        }
        if self.protocol == "http" or self.method is not None:
            view.update(method=self.method, path=self.path, status=self.status)
        if self.proxy is not None:
            view["proxy"] = self.proxy
        view["meta"] = self.meta
        return view


def iso_time(epoch: float) -> str:
    """UTC ISO 8601 with milliseconds, the one time format the project prints."""
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def percentile(sorted_values: list[float], p: float) -> float | None:
    """The p-th percentile (0-100) by linear interpolation between closest ranks; None when empty."""
    if not sorted_values:
        return None
    rank = (len(sorted_values) - 1) * p / 100.0
    low = int(rank)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (rank - low)


def summarize(exchanges: Iterable[Exchange]) -> dict[str, Any]:
    """Counts by channel, outcome, message type and fault action, and latency percentiles.

    Reads the exchanges once, keeping only the latencies besides the counters.
    """
    channels: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    types: Counter[str] = Counter()
    faults: Counter[str] = Counter()
    latencies: list[float] = []
    per_channel: dict[str, list[float]] = {}
    first = last = None
    total = 0
    for ex in exchanges:
        total += 1
        channels[ex.channel] += 1
        outcomes[ex.outcome] += 1
        types[ex.message_type or "(none)"] += 1
        if ex.fault:
            action = ex.fault.get("action")
            faults[str(action.get("type") if isinstance(action, dict) else action)] += 1
        if ex.latency_ms is not None:
            latencies.append(ex.latency_ms)
            per_channel.setdefault(ex.channel, []).append(ex.latency_ms)
        first = ex.started_at if first is None else min(first, ex.started_at)
        last = ex.started_at if last is None else max(last, ex.started_at)

    def spread(values: list[float]) -> dict[str, float | None]:
        values.sort()
        return {
            "count": len(values),
            "p50": percentile(values, 50),
            "p95": percentile(values, 95),
            "p99": percentile(values, 99),
            "max": values[-1] if values else None,
        }

    return {
        "exchanges": total,
        "first": iso_time(first) if first is not None else None,
        "last": iso_time(last) if last is not None else None,
        "by_channel": dict(channels.most_common()),
        "by_outcome": dict(outcomes.most_common()),
        "by_message_type": dict(types.most_common()),
        "by_fault": dict(faults.most_common()),
        "latency_ms": spread(latencies),
        "latency_ms_by_channel": {name: spread(values) for name, values in sorted(per_channel.items())},
    }
