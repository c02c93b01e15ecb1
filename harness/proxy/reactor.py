"""The proxy's reactor: Twisted's epoll reactor without a logging context around every socket event.

Twisted runs each read or write event inside `log.callWithLogger`, which asks the connection for its
log prefix and pushes a context dict so that legacy `log.msg` calls made while handling the event can
name the connection. The proxy never logs through Twisted's legacy log (its lines go through
`harness.proxy.log`), and what a handler raises is caught and reported by the reactor's own
`_doReadOrWrite` either way. With two socket events per relayed message, that context was a sixth
of the proxy's Python samples and 5-7 % of its CPU per message (docs/PERFORMANCE.md). Everything else
is Twisted's.
"""

from __future__ import annotations

import errno
import sys
from typing import Any

from twisted.python import log

try:
    from twisted.internet.epollreactor import EPollReactor
except ImportError:  # no epoll (not Linux): `install` leaves Twisted's default reactor in place
    EPollReactor = object  # type: ignore[assignment,misc]


class ProxyReactor(EPollReactor):
    """`EPollReactor` dispatching socket events without `callWithLogger`; errors are still logged."""

    def doPoll(self, timeout: float | None) -> None:
        try:
            events = self._poller.poll(-1 if timeout is None else timeout, len(self._selectables))
        except OSError as exc:
            if exc.errno == errno.EINTR:
                return
            raise
        selectables = self._selectables
        dispatch = self._doReadOrWrite
        for fd, event in events:
            selectable = selectables.get(fd)
            if selectable is None:
                continue  # removed by an earlier event of this same poll
            try:
                dispatch(selectable, fd, event)
            except KeyboardInterrupt:
                raise
            except BaseException:  # noqa: BLE001 - as callWithLogger: report, keep the loop running
                log.err(None, f"while handling an event of {selectable!r}")

    doIteration = doPoll


def install() -> Any:
    """Install `ProxyReactor` as the global reactor, unless one is installed already; return the reactor.

    Off Linux (no epoll) Twisted's default reactor is used.
    """
    if "twisted.internet.reactor" not in sys.modules and EPollReactor is not object:
        from twisted.internet.main import installReactor

        installReactor(ProxyReactor())
    from twisted.internet import reactor as installed

    return installed
