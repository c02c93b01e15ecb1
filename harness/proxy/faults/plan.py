"""What the MLLP proxy does with one message, as plain data.

Fault actions never touch sockets: each one edits a `Plan` (Toxiproxy's toxics, made sans-IO), and the
proxy's per-message path carries the plan out. A message without a matching rule gets the default plan:
forward the received bytes unchanged and relay the upstream's reply unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

CloseWhen = Literal["before_forward", "after_forward", "mid_frame"]


@dataclass(slots=True)
class Plan:
    # before forwarding
    delay_s: float = 0.0
    """Wait this long before forwarding the request."""
    forward: bool = True
    """False: the request never reaches the upstream (drop, nak, close before forward, reset)."""
    forward_payload: bytes | None = None
    """Replacement message bytes (still framed by the proxy); None forwards the received bytes."""
    forward_raw: bytes | None = None
    """Raw bytes written to the upstream instead of a framed message (broken framing); wins over payload."""
    forward_count: int = 1
    """How many times the request is forwarded (duplicate: 2). Extra replies are captured, not relayed."""
    throttle_request_bps: int | None = None

    # towards the sender
    reply: bytes | None = None
    """A reply the proxy sends itself (a NAK rule); only ever set by an explicit fault rule."""
    reply_to_sender: bool = True
    """False: the sender gets no reply at all (drop)."""
    reply_transform: Callable[[bytes], bytes] | None = None
    """Edits the unframed reply before it goes to the sender (corrupt the response)."""
    reply_raw_transform: Callable[[bytes], bytes] | None = None
    """Edits the framed reply bytes (broken framing on the way back)."""
    hold_reply_s: float = 0.0
    """Wait this long after the upstream replied before relaying (hold_reply, late_ack)."""
    throttle_reply_bps: int | None = None

    # connection-level
    close_sender: CloseWhen | None = None
    """Close the sender's connection at this point (a clean FIN)."""
    reset_sender: bool = False
    """Abort the sender's connection (RST) instead of forwarding."""

    notes: list[str] = field(default_factory=list)
    """Human-readable lines recorded with the exchange (what the fault did)."""
