"""What a fault decision may know besides the message: the channel's settings and the rule's dice.

`FaultContext` is what the proxy hands to `FaultEngine.decide`; `ActionContext` is what one action's
`apply` sees (the message being decided, its metadata, the request it answers, the rule's seeded RNG).
Both are plain values so the engine stays free of sockets and reactors.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class FaultContext:
    channel: str = ""
    ack_timeout_s: float = 30.0
    """The sender's ACK timeout the channel assumes (late_ack replies after it)."""
    charset: str | None = None
    """The channel's explicit charset, None when it follows MSH-18."""
    request: bytes | None = None
    """Response direction only: the request the reply answers (a NAK is built against it)."""
    request_meta: Any = None
    """Response direction only: the request's `Meta`, when the caller has it."""
    reply: str | None = None
    """Response direction only: which reply this is, "accept" (CA CE CR), "application" (AA AE AR, and
    the one ACK of original mode) or "bad" (no usable MSA-1)."""


@dataclass(slots=True)
class ActionContext:
    direction: str
    """"request" or "response": which message the rule matched."""
    payload: bytes
    """The matched message, unframed."""
    meta: Any
    """Its cheap metadata (`harness.hl7v2.meta.Meta`) or None."""
    rng: random.Random
    """The rule's RNG: seeded rules make the same choices on every run."""
    rule_id: str
    channel: FaultContext

    @property
    def request(self) -> bytes | None:
        """The request of this exchange, whichever direction matched."""
        return self.payload if self.direction == "request" else self.channel.request

    @property
    def request_meta(self) -> Any:
        return self.meta if self.direction == "request" else self.channel.request_meta

    @property
    def charset(self) -> str | None:
        """The codec the exchange's messages are in: the channel's setting, else what meta resolved."""
        if self.channel.charset:
            return self.channel.charset
        meta = self.request_meta if self.direction == "response" else self.meta
        return getattr(meta, "charset", None) or getattr(self.meta, "charset", None)
