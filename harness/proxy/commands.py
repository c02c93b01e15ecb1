"""What a protocol session asks its Twisted shell to do: one vocabulary for every protocol.

A session (`harness.proxy.http.session`, and the MLLP one) is sans-IO: it is fed events — bytes from
either side, connections ready, failed or closed, timers fired — and returns a list of these commands;
the shell (`harness.proxy.shell` holds what is shared) carries them out in order and does nothing
else. The model is mitmproxy's `mitmproxy/proxy/commands.py`.

Commands bound for the client (`ToClient`, `CloseClient`, `Sleep`) keep their order across exchanges;
those inside a `Capture`'s `then` wait until the capture allows them (durable: after the commit).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class ToClient:
    data: bytes
    bps: int | None = None
    """Throttle: write at this many bytes per second."""


@dataclass(slots=True)
class CloseClient:
    abort: bool = False
    """True: reset (RST) instead of a clean close, after what was written before."""


@dataclass(slots=True)
class Sleep:
    """Hold back every client-bound command after this one for `seconds` (a fault's late answer)."""

    seconds: float


@dataclass(slots=True)
class ToUpstream:
    data: bytes


@dataclass(slots=True)
class Connect:
    """Get an upstream connection (the upstream, then each backup in order); `fresh` skips idle ones."""

    fresh: bool = False


@dataclass(slots=True)
class ReleaseUpstream:
    """The upstream connection is clean (its last response read completely): back to the idle pool."""


@dataclass(slots=True)
class CloseUpstream:
    abort: bool = False


@dataclass(slots=True)
class StartTimer:
    key: Any
    seconds: float


@dataclass(slots=True)
class CancelTimer:
    key: Any


@dataclass(slots=True)
class Pause:
    """Stop reading `side` ("client" or "upstream") for `reason`; reading resumes when no reason is left."""

    side: str
    reason: str


@dataclass(slots=True)
class Resume:
    side: str
    reason: str


@dataclass(slots=True)
class Capture:
    """Record `exchange`; then run `then` (client-bound commands) once the capture mode allows it."""

    exchange: Any
    then: list = field(default_factory=list)
    optional: bool = False
    """Recorded if the store can, but nothing waits for it: a refusal that must reach the client even
    when the store is why it is refused."""
