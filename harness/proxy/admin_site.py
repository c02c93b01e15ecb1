"""The admin API on the wire: twisted.web with the limits an exposed HTTP port needs.

Twisted's defaults suit a web site, not a control port beside a hospital's interfaces: it spools any
body to a temporary file before the application sees the request (a 200 MB unauthenticated upload is
read whole before the 401), and keeps an idle connection 12 hours. Here:

- the token and the announced body size are judged on the request head (`AdminAPI.gate`); a refused
  request is answered at once, reading from its socket stops and the connection closes, so its body
  is never read (the kernel resets what the client still sends);
- a body without a length (chunked) is counted as it arrives and refused past the limit; bodies are
  held in memory (they are at most the limit), never spooled to disk;
- each request must arrive whole within `request_timeout_s` of its first byte (a slow sender gets
  408), an idle connection closes after `idle_timeout_s`, and at most `max_connections` are open;
- a connection being closed that does not drain our answer is aborted after `ABORT_AFTER_S`.
"""

from __future__ import annotations

import io
from typing import Any

from twisted.web.http import HTTPChannel
from twisted.web.server import Request, Site

ABORT_AFTER_S = 5.0
_REASONS = {401: b"Unauthorized", 408: b"Request Timeout", 413: b"Content Too Large", 503: b"Busy"}


def raw_response(status: int, body: bytes, content_type: str, headers: dict[str, str]) -> bytes:
    """A complete HTTP/1.1 response that closes the connection, written straight to the transport."""
    lines = [
        b"HTTP/1.1 %d %s" % (status, _REASONS.get(status, b"Error")),
        b"Content-Type: " + content_type.encode("ascii"),
        b"Content-Length: %d" % len(body),
        b"Cache-Control: no-store",
        b"Connection: close",
    ]
    lines += [f"{name}: {value}".encode("latin-1") for name, value in headers.items()]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class _Discard:
    """Where a refused request's body would go: nowhere."""

    def write(self, data: bytes) -> None:
        pass

    def tell(self) -> int:
        return 0

    def seek(self, *args: Any) -> None:
        pass

    def read(self, *args: Any) -> bytes:
        return b""

    def close(self) -> None:
        pass


class AdminRequest(Request):
    """Judged on its head before its body is read; its body kept in memory up to the limit."""

    def gotLength(self, length: int | None) -> None:
        channel = self.channel
        method = getattr(channel, "_command", b"") or b""
        path = getattr(channel, "_path", b"") or b""
        refusal = channel.site.api.gate(
            method.decode("ascii", "replace"),
            path.decode("utf-8", "replace"),
            self.requestHeaders.getRawHeaders(b"authorization", [None])[0],
            length,
        )
        if refusal is not None:
            self.content = _Discard()
            channel.refuse(refusal.status, refusal.body, refusal.content_type, refusal.headers)
            return
        self.content = io.BytesIO()
        self._body_bytes = 0

    def handleContentChunk(self, data: bytes) -> None:
        if isinstance(self.content, _Discard):
            return
        self._body_bytes += len(data)
        api = self.channel.site.api
        if self._body_bytes > api.max_body:
            self.content = _Discard()
            too_large = api.too_large(self._body_bytes, so_far=True)
            self.channel.refuse(too_large.status, too_large.body, too_large.content_type, too_large.headers)
            return
        self.content.write(data)


class AdminHTTPChannel(HTTPChannel):
    """One admin connection: a deadline per request, a refusal that stops reading, counted open."""

    def connectionMade(self) -> None:
        self._deadline: Any = None
        self._abort: Any = None
        self.refused = False
        self.site.open_connections += 1
        super().connectionMade()

    def dataReceived(self, data: bytes) -> None:
        if self.refused:
            return
        if self._deadline is None and not self._handlingRequest:
            self._deadline = self.callLater(self.site.request_timeout_s, self._too_slow)
        super().dataReceived(data)

    def allContentReceived(self) -> None:
        self._cancel_deadline()
        if self.refused:  # answered on its head already: the request is not processed
            return
        super().allContentReceived()

    def _send100Continue(self) -> None:
        if not self.refused:  # a refused request's client gets its answer, not an invitation to send
            super()._send100Continue()

    def _too_slow(self) -> None:
        self._deadline = None
        limit = self.site.request_timeout_s
        body = f'{{"error": "request not received whole within {limit:g} s"}}\n'.encode()
        self.refuse(408, body, "application/json; charset=utf-8", {})

    def refuse(self, status: int, body: bytes, content_type: str, headers: dict[str, str]) -> None:
        """Answer now and close: stop reading (the rest of the body stays unread), abort if not drained."""
        if self.refused:
            return
        self.refused = True
        self._cancel_deadline()
        self.setTimeout(None)
        transport = self.transport
        transport.write(raw_response(status, body, content_type, headers))
        transport.loseConnection()  # stops reading at once; closes when the answer is written
        self._abort = self.callLater(ABORT_AFTER_S, transport.abortConnection)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def connectionLost(self, reason: Any) -> None:
        self._cancel_deadline()
        if self._abort is not None and self._abort.active():
            self._abort.cancel()
        self.site.open_connections -= 1
        super().connectionLost(reason)


class AdminSite(Site):
    """The admin resource behind the limits above; refuses connections past `max_connections`."""

    protocol = AdminHTTPChannel
    requestFactory = AdminRequest

    def __init__(
        self,
        resource: Any,
        api: Any,
        *,
        reactor: Any,
        idle_timeout_s: float,
        request_timeout_s: float,
        max_connections: int,
    ) -> None:
        super().__init__(resource, timeout=idle_timeout_s, reactor=reactor)
        self.api = api
        self.request_timeout_s = request_timeout_s
        self.max_connections = max_connections
        self.open_connections = 0
        self.displayTracebacks = False
        self.noisy = False

    def buildProtocol(self, addr: Any) -> Any:
        if self.open_connections >= self.max_connections:
            return None  # closed at once: the admin port cannot eat the proxy's file descriptors
        return super().buildProtocol(addr)

    def log(self, request: Any) -> None:
        """No access log: the proxy logs what matters itself."""
