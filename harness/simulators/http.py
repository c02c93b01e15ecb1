"""The one Twisted web shell shared by the HTTP simulators (fhir, soap, medins, cdc).

It only moves bytes: reads the request body up to a size limit, hands an `HttpRequest` to the
simulator core and writes the core's `HttpResponse` back, keeping the connection alive. A body over
the limit is discarded as it arrives (never buffered) and answered by the core's 413.
"""

from __future__ import annotations

import io
import signal
import sys
import time
import traceback
from collections.abc import Callable

from twisted.internet import reactor as _reactor
from twisted.web import resource, server

from harness.simulators.wire import Core, HttpRequest, HttpResponse, text_response
from harness.tls import HTTP_ALPN, ListenerTLS, describe, server_options

DEFAULT_MAX_BODY = 10 * 1024 * 1024


class LimitedRequest(server.Request):
    """A request that keeps at most `max_body` bytes of body and remembers when it had to drop more."""

    max_body = DEFAULT_MAX_BODY

    def gotLength(self, length: int | None) -> None:
        self.body_too_large = length is not None and length > self.max_body
        self.body_seen = 0
        self.content = io.BytesIO()

    def handleContentChunk(self, data: bytes) -> None:
        self.body_seen += len(data)
        if self.body_too_large:
            return
        if self.body_seen > self.max_body:
            self.body_too_large = True
            self.content = io.BytesIO()
            return
        self.content.write(data)


class SimulatorResource(resource.Resource):
    """Every path goes to the core; the core decides 404s."""

    isLeaf = True

    def __init__(self, core: Core, *, max_body: int, log: Callable[[str], None]) -> None:
        super().__init__()
        self.core = core
        self.max_body = max_body
        self.log = log

    def render(self, request: server.Request) -> bytes:
        started = time.perf_counter()
        headers = {
            name.decode("latin-1").lower(): b", ".join(values).decode("latin-1")
            for name, values in request.requestHeaders.getAllRawHeaders()
        }
        too_large = getattr(request, "body_too_large", False)
        content = getattr(request, "content", None)
        body = b""
        if not too_large and content is not None:
            content.seek(0)
            body = content.read()
        req = HttpRequest(
            method=request.method.decode("latin-1"),
            target=request.uri.decode("utf-8", "replace"),  # raw non-ASCII query text is usually UTF-8
            headers=headers,
            body=body,
        )
        try:
            if too_large:
                resp = self.core.too_large(req, self.max_body)
                request.setHeader(b"Connection", b"close")
            else:
                resp = self.core.handle(req)
        except Exception as exc:  # a simulator bug must not take the server down
            traceback.print_exc(file=sys.stderr)
            resp = text_response(500, f"internal error in the {self.core.name} simulator: {exc!r}")
        self._write(request, resp)
        elapsed = (time.perf_counter() - started) * 1000
        peer = request.getClientAddress()
        self.log(
            f"{getattr(peer, 'host', '?')} {req.method} {req.target} -> {resp.status} "
            f"{len(resp.body)}B {elapsed:.1f}ms"
        )
        return resp.body if request.method != b"HEAD" else b""

    @staticmethod
    def _write(request: server.Request, resp: HttpResponse) -> None:
        request.setResponseCode(resp.status)
        for name, value in resp.headers.items():
            request.setHeader(name.encode("latin-1"), value.encode("utf-8"))
        request.setHeader(b"Content-Length", str(len(resp.body)).encode("ascii"))


def make_site(core: Core, *, max_body: int = DEFAULT_MAX_BODY, log: Callable[[str], None] | None = None):
    """A twisted.web Site serving `core`; log gets one line per request."""
    request_factory = type("BoundedRequest", (LimitedRequest,), {"max_body": max_body})
    site = server.Site(
        SimulatorResource(core, max_body=max_body, log=log or (lambda line: print(line, flush=True))),
        requestFactory=request_factory,
        timeout=120,
    )
    site.noisy = False
    site.displayTracebacks = False
    return site


def format_hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def serve(
    core: Core,
    host: str,
    port: int,
    *,
    max_body: int = DEFAULT_MAX_BODY,
    quiet: bool = False,
    tls: ListenerTLS | None = None,
) -> None:
    """Listen, print "listening on HOST:PORT" (the real port when 0 was asked), run until SIGTERM/SIGINT.

    One line per request goes to stdout unless `quiet` (load tests: a reader that never drains the pipe
    would otherwise stall the server). With `tls`, HTTPS (HTTP/1.1 over ALPN), mutual when `tls.ca` is set.
    """
    reactor = _reactor
    log = (lambda line: None) if quiet else None
    site = make_site(core, max_body=max_body, log=log)
    if tls is None:
        listening = reactor.listenTCP(port, site, interface=host)
    else:
        listening = reactor.listenSSL(port, site, server_options(tls, HTTP_ALPN), interface=host)
    real = listening.getHost()

    def stop(signum: int, frame: object) -> None:
        reactor.callFromThread(reactor.stop)

    # Handlers go in before "listening" is printed: a supervisor may send SIGTERM as soon as it reads it.
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    secure = describe(tls)
    print(f"{core.name} simulator listening on {format_hostport(host, real.port)}{secure}", flush=True)
    reactor.run(installSignalHandlers=False)
    print(f"{core.name} simulator stopped", flush=True)
