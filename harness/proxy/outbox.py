"""Ordered writes to one transport, optionally throttled, with a shortcut past Twisted's buffer.

A throttled write (a slow-body fault) holds back everything queued after it, so a reply and the
close that follows it leave in the order they were asked for.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

THROTTLE_TICK_S = 0.05


def direct_write(transport: Any, data: bytes) -> None:
    """Write now when the transport has nothing buffered, else through Twisted's buffer.

    Twisted's TCP `write` only buffers and waits for the next reactor turn (two epoll changes and a
    loop iteration per write); one small reply per message makes that the largest per-message cost.
    Sending at once when nothing is queued keeps the byte order (Twisted's buffer is empty, so
    nothing could overtake) and hands the rest to Twisted when the kernel takes only part.
    """
    sock = getattr(transport, "socket", None)
    if (
        sock is not None
        and transport.connected
        and not transport.disconnecting
        and not transport._tempDataLen
        and transport.offset == len(transport.dataBuffer)
    ):
        try:
            sent = sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            sent = 0  # Twisted's own write path reports the error as a lost connection
        if sent == len(data):
            return
        data = data[sent:]
    transport.write(data)


def supports_direct_write(transport: Any) -> bool:
    """A plain Twisted TCP connection whose buffer `direct_write` knows how to check."""
    from twisted.internet.tcp import Connection

    return isinstance(transport, Connection) and all(
        hasattr(transport, name) for name in ("_tempDataLen", "offset", "dataBuffer", "socket")
    )


class Outbox:
    """Writes to one transport in order; a throttled write holds back everything queued after it."""

    __slots__ = ("reactor", "_transport", "queue", "busy", "on_idle", "direct")

    def __init__(self, reactor: Any, on_idle: Callable[[], None] | None = None) -> None:
        self.reactor = reactor
        self._transport: Any = None
        self.queue: deque = deque()
        self.busy = False
        self.on_idle = on_idle
        self.direct = False

    @property
    def transport(self) -> Any:
        return self._transport

    @transport.setter
    def transport(self, transport: Any) -> None:
        self._transport = transport
        self.direct = transport is not None and supports_direct_write(transport)

    def write(self, data: bytes, bps: int | None = None) -> None:
        """Send `data`, at `bps` bytes a second when given (in ticks of THROTTLE_TICK_S)."""
        if not self.busy and not self.queue and bps is None:
            if self.direct:
                direct_write(self._transport, data)
            elif self._transport is not None:
                self._transport.write(data)
            return
        self.queue.append(("write", data, bps))
        self._pump()

    def close(self, abort: bool = False) -> None:
        """Close (or abort) once everything written before has left."""
        if not self.busy and not self.queue:
            self._close(abort)
            return
        self.queue.append(("close", abort, None))
        self._pump()

    def _close(self, abort: bool) -> None:
        t = self.transport
        if t is None:
            return
        if abort:
            t.abortConnection()
        else:
            t.loseConnection()

    def _pump(self) -> None:
        while self.queue and not self.busy:
            kind, value, bps = self.queue.popleft()
            if kind == "close":
                self._close(value)
            elif bps is None:
                if self.transport is not None:
                    self.transport.write(value)
            else:
                self.busy = True
                self._drip(value, bps)
                return
        if not self.busy and self.on_idle is not None:
            self.on_idle()

    def _drip(self, data: bytes, bps: int) -> None:
        if self.transport is None:
            self.busy = False
            self.queue.clear()
            return
        size = max(1, int(bps * THROTTLE_TICK_S))
        self.transport.write(data[:size])
        rest = data[size:]
        if rest:
            self.reactor.callLater(THROTTLE_TICK_S, self._drip, rest, bps)
        else:
            self.busy = False
            self.reactor.callLater(0, self._pump)
