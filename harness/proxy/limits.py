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
