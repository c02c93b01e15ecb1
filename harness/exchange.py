"""The exchange: one request and its response (or their absence) on one channel.

Capture writes exchanges, replay reads and writes them, reports summarise them; every
protocol (MLLP, HTTP) and kind (hl7v2, fhir, soap, medins, cdc, raw) shares this one record so
those tools never branch on where an exchange came from.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

PROTOCOLS = ("mllp", "http")
KINDS = ("hl7v2", "fhir", "soap", "medins", "cdc", "raw")
OUTCOMES = ("ok", "nak", "timeout", "upstream_down", "malformed", "fault", "late_ack", "error")


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
        view["meta"] = self.meta
        return view


def iso_time(epoch: float) -> str:
    """UTC ISO 8601 with milliseconds, the one time format the project prints."""
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
