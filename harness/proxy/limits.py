"""Bounds the proxy's Twisted shells share: file descriptors held at once, and full write buffers.

`ConnectionBudget` counts sockets against the process's descriptor limit less what the process
already holds and a reserve, so that reaching the limit refuses *new* senders with a record of it
and never breaks the upstream connect of a sender already accepted (each accepted connection holds
its upstream socket's place from the start). `Backlog` is a Twisted streaming producer registered on
a transport: the transport calls it when its write buffer passes `bufferSize` and again when it has
drained, which is how a peer that does not read stops the proxy from reading the other side.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Callable
from typing import Any

from twisted.internet import protocol

from harness.exchange import Exchange

RESERVE = 32
"""Descriptors kept free beyond those open at start (writer pipes, log files, the admin API's peers)."""


def raise_descriptor_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (a proxy holds two sockets per sender); returns
    the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def open_descriptors() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 16


class ConnectionBudget:
    """How many sockets the proxy may still open; `take` before accepting, `give` once closed."""

    def __init__(self, limit: int) -> None:
        self.limit = max(0, limit)
        self.used = 0
        self.refused = 0

    def measure(self, reserve: int = RESERVE) -> None:
        """Set the limit from this process: its descriptor limit (raised to the hard limit) less what is
        open now (listeners, store, writer pipes) and `reserve`."""
        self.limit = max(0, raise_descriptor_limit() - open_descriptors() - reserve)

    def take(self, n: int) -> bool:
        if self.used + n > self.limit:
            self.refused += 1
            return False
        self.used += n
        return True

    def give(self, n: int) -> None:
        self.used = max(0, self.used - n)


class Backlog:
    """A streaming producer for a transport's write side: `full()` when its buffer passes the
    transport's bufferSize, `drained()` when it is empty again (Twisted calls these as pause/resume)."""

    def __init__(self, full: Callable[[], Any], drained: Callable[[], Any]) -> None:
        self._full = full
        self._drained = drained

    def pauseProducing(self) -> None:  # noqa: N802 - Twisted's IPushProducer
        self._full()

    def resumeProducing(self) -> None:  # noqa: N802
        self._drained()

    def stopProducing(self) -> None:  # noqa: N802
        pass


def refusal(channel: Any, sockets: int) -> str | None:
    """Why a new client connection of `channel` cannot be taken now; None when it can (its `sockets`
    places in the descriptor budget are then taken, `release` gives them back)."""
    limit = channel.config.max_connections
    if len(channel.connections) >= limit:
        return f"max_connections ({limit}) reached on channel {channel.name}"
    budget = getattr(channel, "budget", None)
    if budget is not None and not budget.take(sockets):
        return (f"the proxy's file descriptor budget is spent ({budget.used} of {budget.limit} in use); "
                "connections already accepted keep theirs")
    return None


class RefusedConnection(protocol.Protocol):
    """A client the channel cannot take now: a capture row says who and why, `greeting` (an HTTP 503)
    tells the client where the protocol allows, then the socket closes."""

    def __init__(self, channel: Any, why: str, *, kind: str, greeting: bytes = b"") -> None:
        self.channel = channel
        self.why = why
        self.kind = kind
        self.greeting = greeting

    def connectionMade(self) -> None:  # noqa: N802 - Twisted's name
        channel = self.channel
        peer = self.transport.getPeer()
        client = f"{getattr(peer, 'host', '?')}:{getattr(peer, 'port', '?')}"
        channel.stats.refused_connections += 1
        ex = Exchange(channel=channel.name, protocol=channel.config.protocol, kind=self.kind,
                      client_addr=client, outcome="error", error=f"connection refused: {self.why}")
        ex.finish(ex.started_at)
        if channel.writer is not None:
            try:
                channel.writer.submit(ex)
            except Exception:  # noqa: BLE001 - a closed writer must not keep the socket open
                pass
        channel.warn(ex)
        if self.greeting:
            self.transport.write(self.greeting)
            self.transport.loseConnection()
        else:
            self.transport.abortConnection()
