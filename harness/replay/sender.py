"""How a replayed request reaches the target: the protocol-neutral `Sender` and its MLLP implementation.

Replay only needs "send these bytes, tell me what came back and how it went"; each protocol wraps its
own client. The MLLP one wraps the same blocking client `harness send` uses (ACK matched by MSA-2,
reconnect when the peer closes, TLS). A sender is one connection and not thread-safe: the replay
opens one per worker thread through a `SenderFactory`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(slots=True)
class Sent:
    """What happened to one replayed request, in the vocabulary of `Exchange.outcome`."""

    started_at: float
    ended_at: float
    response: bytes | None
    outcome: str
    """The exchange outcomes: ok, nak, bad_ack, timeout, no_ack_expected, upstream_down, error."""
    ack_code: str | None = None
    latency_ms: float | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    unreachable: bool = False
    """The target could not be reached at all (refused, unreachable): later sends would fail too."""
    accept_response: bytes | None = None
    """Enhanced mode: the accept ACK that came before the application ACK."""
    accept_ack_code: str | None = None


class Sender(Protocol):
    target: str
    protocol: str

    def send(self, payload: bytes, *, control_id: str | None = None, charset: str | None = None) -> Sent:
        """Send one request and wait for its response; network trouble is reported, never raised."""
        ...

    def close(self) -> None: ...


SenderFactory = Callable[[], Sender]

class MLLPSender:
    """A `Sender` over `harness.mllp_client.MLLPClient`."""

    protocol = "mllp"

    def __init__(self, host: str, port: int, *, timeout: float = 10.0, tls=None, charset: str | None = None):
        from harness.mllp_client import MLLPClient

        self._client = MLLPClient(host, port, timeout=timeout, tls=tls, charset=charset)
        self.target = self._client.address

    def send(self, payload: bytes, *, control_id: str | None = None, charset: str | None = None) -> Sent:
        started = time.time()
        result = self._client.send(payload, control_id)
        ended = time.time()
        notes = list(result.notes)
        for late in result.late_acks:
            notes.append(
                f"late ACK {late.ack_code} for {late.control_id!r}"
                + (" (an earlier message)" if late.earlier else "")
            )
        if result.reconnected:
            notes.append("reconnected")
        latency = result.rtt_ms if result.rtt_ms is not None else (ended - started) * 1000.0
        return Sent(
            started_at=started,
            ended_at=ended,
            response=result.ack,
            outcome=result.outcome,
            ack_code=result.ack_code,
            accept_response=result.accept_ack,
            accept_ack_code=result.accept_ack_code,
            latency_ms=latency,
            error=result.error,
            notes=notes,
            unreachable=result.error_kind == "connect",
        )

    def close(self) -> None:
        self._client.close()


def mllp_factory(
    target: str, *, timeout: float = 10.0, tls=None, charset: str | None = None
) -> SenderFactory:
    """A factory of MLLP senders to HOST:PORT (raises ValueError for a bad address, before any send)."""
    from harness.address import parse_hostport

    host, port = parse_hostport(target, what="--to")
    return lambda: MLLPSender(host, port, timeout=timeout, tls=tls, charset=charset)
