"""The HTTP reverse proxy's Twisted shell: client connections, a keep-alive upstream pool, capture.

Framing is `harness.http_wire` (sans-IO), fault decisions the shared `FaultEngine` over an `HttpPlan`,
what happens around the upstream (plan steps, retry, 502/504/cut) `harness.proxy.http.session`,
which idle connection a request gets `harness.proxy.http.pool`, the bytes of a held response
`harness.proxy.http.response`, metadata `harness.codecs`. Bytes are forwarded
as received: the request and response heads are rebuilt only to drop hop-by-hop headers (RFC 9110
7.6.1) and, when configured, to set Host or X-Forwarded-For; bodies (chunk framing included) pass
through untouched.

Bodies stream: up to `capture_body_bytes` of a request is held so rules can look at it, beyond that
it flows to the upstream as it arrives (back-pressure through Twisted producers) and the capture keeps
only that much, saying so. A response streams to the client as it arrives unless something must see
it whole first (a response fault rule, a fault that rewrites it, durable capture); then up to the
capture limit is held and the rest streams. In durable mode a response that fits the capture limit
reaches the client only after its exchange's commit, so no client has such an answer the store does
not; a larger one streams and is committed when it ends.

Never fake success: an unreachable upstream gives 502 with a body saying why (or a closed
connection, `on_upstream_down: close`), no response head within `response_timeout_s` gives 504.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from twisted.internet import protocol
from twisted.internet.endpoints import connectProtocol
from twisted.protocols.policies import TimeoutMixin

from harness import codecs, http_summary
from harness.exchange import Exchange
from harness.http_wire import (
    Body,
    Broken,
    End,
    Head,
    Interim,
    MessageReader,
    build_head,
    forward_headers,
)
from harness.proxy import endpoints
from harness.proxy.config import Address
from harness.proxy.endpoints import UpstreamDialer, set_nodelay
from harness.proxy.faults.context import FaultContext
from harness.proxy.faults.http_plan import HttpPlan, HttpReply, HttpView
from harness.proxy.http.config import HTTPChannelConfig
from harness.proxy.http.pool import UpstreamPool
from harness.proxy.http.response import Rendered, render
from harness.proxy.http.session import (
    RESET_TEXT,
    Answer,
    CancelTimer,
    Connect,
    Cut,
    DropUpstream,
    HttpSession,
    PauseClient,
    Relay,
    Reply,
    Resend,
    Reset,
    SessionSettings,
    StartTimer,
)
from harness.proxy.log import FailureLog, log_stderr
from harness.proxy.outbox import Outbox
from harness.proxy.stats import ChannelStats

SERVER_NAME = "harness-proxy"


def error_reply(status: int, reason: str, text: str, *, close: bool = False) -> bytes:
    """A plain-text response the proxy itself sends (never a 2xx)."""
    body = (text.rstrip("\n") + "\n").encode("utf-8")
    headers = [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(body))),
        ("X-Harness-Proxy", "error"),
    ]
    if close:
        headers.append(("Connection", "close"))
    return build_head(f"HTTP/1.1 {status} {reason}", headers) + body


class HTTPChannel:
    """One configured HTTP channel at run time: settings, codec, faults, counters, writer, pool."""

    def __init__(
        self,
        config: HTTPChannelConfig,
        reactor: Any,
        *,
        faults: Any = None,
        stats: ChannelStats | None = None,
        writer: Any = None,
        log: Any = log_stderr,
    ) -> None:
        self.config = config
        self.name = config.name
        self.reactor = reactor
        self.codec = codecs.get(config.kind)
        self.faults = faults
        self.stats = stats or ChannelStats()
        self.writer = writer if config.capture != "off" else None
        self.durable = config.capture == "durable" and self.writer is not None
        self.log = log
        self.connections: set[ClientConnection] = set()
        self.store_errors = 0
        self.warn = FailureLog(config.name, log)
        self.dialer = UpstreamDialer(
            reactor, connect_timeout_s=config.connect_timeout_s, tls=config.upstream_tls
        )
        self.pool = UpstreamPool(config.upstreams, config.pool_size)
        self.upstream_hosts = [str(a) for a in config.upstreams]
        self.settings = SessionSettings.from_channel(config)

    def factory(self) -> protocol.Factory:
        channel = self

        class _Factory(protocol.Factory):
            noisy = False

            def buildProtocol(self, addr: Any) -> ClientConnection:
                return ClientConnection(channel)

        return _Factory()

    def listen(self) -> Any:
        config = self.config
        return endpoints.listen(self.reactor, config.listen, self.factory(), config.tls, backlog=1024)

    def pause_all(self, paused: bool) -> None:
        for conn in list(self.connections):
            conn.set_store_pressure(paused)

    # -- the upstream pool -----------------------------------------------------------------------

    def acquire(self, on_ready: Any, on_failed: Any) -> None:
        """Hand an upstream connection to `on_ready(conn, reused)`: an idle pooled one if any, else a
        new one to the first upstream that accepts (backups in order); `on_failed(reason)` otherwise."""
        conn = self.pool.take()
        if conn is not None:
            on_ready(conn, True)
            return
        self.connect(0, [], on_ready, on_failed)

    def connect(self, i: int, errors: list[str], on_ready: Any, on_failed: Any) -> None:
        addresses = self.config.upstreams
        if i >= len(addresses):
            on_failed("; ".join(errors))
            return
        address = addresses[i]
        proto = UpstreamConnection(self, address)
        started = time.monotonic()

        def ok(_: Any) -> None:
            if i > 0:
                self.log(
                    "warning", f"channel {self.name}: upstream {addresses[0]} unavailable, using {address}"
                )
            on_ready(proto, False)

        def failed(failure: Any) -> None:
            waited = time.monotonic() - started
            errors.append(f"{address}: {failure.getErrorMessage()} (after {waited:.1f} s)")
            self.connect(i + 1, errors, on_ready, on_failed)

        connectProtocol(self.dialer.endpoint(address), proto).addCallbacks(ok, failed)

    def release(self, conn: UpstreamConnection) -> None:
        """Back to the pool after a complete response on a keep-alive connection."""
        conn.flight = None
        if not self.pool.put(conn):
            conn.transport.loseConnection()

    def forget(self, conn: UpstreamConnection) -> None:
        self.pool.forget(conn)


class UpstreamConnection(protocol.Protocol):
    def __init__(self, channel: HTTPChannel, address: Address) -> None:
        self.channel = channel
        self.address = address
        self.flight: Flight | None = None
        self.reader = MessageReader(request=False)
        self.connected = False
        self.got_bytes = False

    def connectionMade(self) -> None:
        self.connected = True
        set_nodelay(self.transport)

    def dataReceived(self, data: bytes) -> None:
        self.channel.stats.bytes_in += len(data)
        flight = self.flight
        if flight is None:  # bytes nobody asked for on an idle connection: it cannot be trusted
            self.transport.loseConnection()
            return
        self.got_bytes = True
        flight.response_events(self.reader.feed(data))

    def connectionLost(self, reason: Any = None) -> None:
        self.connected = False
        self.channel.forget(self)
        flight = self.flight
        if flight is not None:
            self.flight = None
            flight.upstream_lost(self, self.reader.close(), reason)


class Flight:
    """One request on its way through: its capture, its fault plan, its response (the sans-IO state
    lives in the reader, the `HttpSession`, the plan and the exchange; this class moves bytes between
    them and carries out the session's actions)."""

    __slots__ = (
        "conn", "channel", "head", "started", "req_raw", "req_data", "req_size", "req_done",
        "req_truncated", "forwarding", "pending", "upstream", "session", "view", "plan",
        "fault", "resp_head", "resp_raw", "resp_data", "resp_size", "resp_truncated", "holding",
        "head_sent", "timers", "done", "close_after", "answered_continue", "resp_view", "notes",
        "status_sent", "upstream_addr", "req_kept",
    )  # fmt: skip

    def __init__(self, conn: ClientConnection, head: Head) -> None:
        self.conn = conn
        self.channel = conn.channel
        self.head = head
        self.started = time.time()
        self.req_raw: list[bytes] = [head.raw, b"\r\n\r\n"]
        self.req_data: list[bytes] = []
        self.req_size = 0
        self.req_kept = 0
        """Body wire bytes kept for the capture (at most capture_body_bytes)."""
        self.req_done = False
        self.req_truncated = False
        self.forwarding = False
        self.pending: list[bytes] = []
        self.upstream: UpstreamConnection | None = None
        self.session = HttpSession(self.channel.settings)
        self.view: HttpView | None = None
        self.plan: HttpPlan | None = None
        self.fault: Any = None
        self.resp_head: Head | None = None
        self.resp_raw: list[bytes] = []
        self.resp_data: list[bytes] = []
        self.resp_size = 0
        self.resp_truncated = False
        self.holding = False
        self.head_sent = False
        self.timers: dict[str, Any] = {}
        self.done = False
        self.close_after = not head.keep_alive()
        self.answered_continue = False
        self.resp_view: HttpView | None = None
        self.notes: list[str] = []
        self.status_sent: int | None = None
        self.upstream_addr: str | None = None

    # -- the request ---------------------------------------------------------------------------------

    def request_body(self, event: Body) -> None:
        cfg = self.channel.config
        data = event.data
        if data:
            self.req_size += len(data)
            if self.req_size > cfg.max_body_bytes:
                sent = "the upstream got only its first part" if self.forwarding else "not forwarded"
                self.conn.refuse(
                    413,
                    "Content Too Large",
                    f"request body larger than max_body_bytes ({cfg.max_body_bytes} bytes); {sent}",
                )
                return
        if not self.req_truncated:
            room = cfg.capture_body_bytes - self.req_kept
            if len(event.raw) <= room:
                self.req_raw.append(event.raw)
                self.req_kept += len(event.raw)
                if data:
                    self.req_data.append(data)
            else:  # keep what fits (wire bytes; the capture says it is a part)
                self.req_truncated = True
                self.req_raw.append(event.raw[:room])
                self.req_kept += room
                if data:
                    self.req_data.append(data[:room])
        if self.forwarding:
            self.to_upstream(event.raw)
        else:
            self.pending.append(event.raw)
            if self.req_truncated:
                self.session.request_streamed()
                self.start(streaming=True)

    def request_end(self, event: End) -> None:
        self.req_done = True
        self.session.request_done()
        if event.raw:
            if not self.req_truncated:
                self.req_raw.append(event.raw)
            if self.forwarding:
                self.to_upstream(event.raw)
            else:
                self.pending.append(event.raw)
        if not self.forwarding:
            self.start(streaming=False)

    def start(self, *, streaming: bool) -> None:
        """The request is complete (or too big to hold): read its metadata, decide, forward."""
        channel = self.channel
        self.forwarding = True
        head = self.head
        body = b"".join(self.req_data)
        meta = channel.codec.request_meta(head.method, head.target, head.mapping(), body)
        self.view = HttpView(
            channel.config.kind, head.method, head.target, head, body, meta, body_complete=not streaming
        )
        if streaming:
            self.notes.append(
                f"request body over capture_body_bytes ({channel.config.capture_body_bytes}): streamed; "
                "metadata and rules saw only the first part"
            )
            self.conn.pause("stream")
        plan = HttpPlan()
        engine = channel.faults
        if engine is not None and engine.has_rules("request"):
            self.fault = engine.decide(
                "request", body, self.view, FaultContext(channel=channel.name), plan=plan
            )
        if self.fault is not None or engine is not None and engine.has_rules("response"):
            self.plan = plan
        self.run(self.session.decided(self.fault, plan))

    # -- carrying out what the session decided --------------------------------------------------------

    def run(self, actions: list) -> None:
        for action in actions:
            cls = action.__class__
            if cls is Connect:
                if action.fresh:
                    self.channel.connect(0, [], self.upstream_ready, self.upstream_failed)
                else:
                    self.channel.acquire(self.upstream_ready, self.upstream_failed)
            elif cls is StartTimer:
                self.timers[action.key] = self.channel.reactor.callLater(
                    action.seconds, self.timer_fired, action.key
                )
            elif cls is CancelTimer:
                timer = self.timers.pop(action.key, None)
                if timer is not None and timer.active():
                    timer.cancel()
            elif cls is Answer:
                self.send_own(
                    action.status, action.reason, action.text, outcome=action.outcome, error=action.error
                )
            elif cls is Cut:
                self.finish(action.outcome, None, action.error, abort=action.abort, close=True)
            elif cls is DropUpstream:
                up = self.upstream
                self.upstream = None
                if up is not None:
                    up.flight = None
                    up.transport.abortConnection()
            elif cls is Resend:
                self.upstream = None
                self.pending = [b"".join(self.req_raw[2:])]
            elif cls is PauseClient:
                self.conn.pause("fault")  # what follows is not read until this exchange is answered
            elif cls is Reset:
                self.finish("fault", None, RESET_TEXT, abort=True)
            elif cls is Reply:
                self.send_reply(action.reply, outcome="fault")

    def timer_fired(self, key: str) -> None:
        self.timers.pop(key, None)
        self.run(self.session.timer_fired(key))

    def upstream_ready(self, conn: UpstreamConnection, reused: bool) -> None:
        if self.done or not self.conn.connected:
            if reused or conn.connected:
                self.channel.release(conn)
            return
        self.upstream = conn
        self.upstream_addr = str(conn.address)
        conn.flight = self
        conn.got_bytes = False
        conn.reader.request_method = self.head.method
        cfg = self.channel.config
        drop = ("expect",) if self.answered_continue else ()
        headers = forward_headers(self.head, drop=drop)
        if cfg.rewrite_host:
            host = str(conn.address)
            headers = [("Host", host) if k.lower() == "host" else (k, v) for k, v in headers]
            if not any(k.lower() == "host" for k, _ in headers):
                headers.insert(0, ("Host", host))
        if cfg.x_forwarded_for:
            client = self.conn.client_host
            prior = self.head.get("X-Forwarded-For")
            headers = [
                (k, v) for k, v in headers if k.lower() not in ("x-forwarded-for", "x-forwarded-proto")
            ]
            headers.append(("X-Forwarded-For", f"{prior}, {client}" if prior else client))
            headers.append(("X-Forwarded-Proto", "https" if cfg.tls is not None else "http"))
        if len(headers) == len(self.head.headers) and not (cfg.rewrite_host or cfg.x_forwarded_for):
            out = self.head.raw + b"\r\n\r\n"  # nothing to drop or add: exactly as received
        else:
            out = build_head(self.head.start, headers)
        pending = self.pending
        self.pending = []
        self.to_upstream(out + b"".join(pending))
        if not self.req_done:
            conn.transport.registerProducer(self.conn.transport, True)
            self.conn.resume("stream")
        self.run(self.session.upstream_ready(reused))

    def to_upstream(self, data: bytes) -> None:
        up = self.upstream
        if up is None:
            self.pending.append(data)
            return
        if data:
            self.channel.stats.bytes_out += len(data)
            up.transport.write(data)

    def request_streamed(self) -> None:
        """The client finished sending a streamed body: stop using it as the upstream's producer."""
        if self.upstream is not None and self.upstream.connected:
            self.upstream.transport.unregisterProducer()
        conn = self.conn
        if conn.connected and not conn._paused_by:
            conn.transport.resumeProducing()  # the upstream may have paused it and no longer will resume it

    def upstream_failed(self, why: str) -> None:
        self.run(self.session.upstream_failed(why))

    # -- the response --------------------------------------------------------------------------------

    def response_events(self, events: list) -> None:
        conn = self.conn
        conn.cork()  # head and body of a small response leave in one send
        try:
            self._response_events(events)
        finally:
            conn.uncork()

    def _response_events(self, events: list) -> None:
        for event in events:
            if self.done:
                return
            cls = event.__class__
            if cls is Body:
                self.response_body(event)
            elif cls is Head:
                self.response_head(event)
            elif cls is End:
                self.response_end(event)
            elif cls is Interim:
                if event.head.status != 100 or not self.answered_continue:
                    self.conn.write(event.head.raw + b"\r\n\r\n")
            elif cls is Broken:
                self.response_broken(event.problem)

    def response_head(self, head: Head) -> None:
        engine = self.channel.faults
        hold = self.channel.durable or (engine is not None and engine.has_rules("response"))
        self.run(self.session.response_head(hold))
        self.resp_head = head
        self.resp_raw = [head.raw, b"\r\n\r\n"]
        self.holding = self.session.holding
        if not self.holding:
            self.send_head(head)

    def send_head(self, head: Head, *, length: int | None = None) -> None:
        close = self.close_after or self.conn.closing
        if length is None and head.content_length is None and not head.chunked and self.expects_body(head):
            close = True  # a body delimited by the close: the client can only see its end by ours
        headers = forward_headers(head)
        unchanged = len(headers) == len(head.headers)
        if length is not None:
            headers = [(k, v) for k, v in headers if k.lower() not in ("content-length", "transfer-encoding")]
            headers.append(("Content-Length", str(length)))
            unchanged = False
        if close:
            headers.append(("Connection", "close"))
            self.close_after = True
            unchanged = False
        elif head.version == "HTTP/1.0" or self.head.version == "HTTP/1.0":
            headers.append(("Connection", "keep-alive"))
            unchanged = False
        self.status_sent = head.status
        self.head_sent = True
        self.session.head_forwarded()
        # nothing to drop or add: the head goes on exactly as the upstream sent it
        self.conn.write(head.raw + b"\r\n\r\n" if unchanged else build_head(head.start, headers))

    def expects_body(self, head: Head) -> bool:
        return not (self.head.method == "HEAD" or head.status in (204, 304) or head.status < 200)

    def response_body(self, event: Body) -> None:
        data = event.data
        limit = self.channel.config.capture_body_bytes
        if data:
            if self.resp_size + len(data) <= limit:
                self.resp_data.append(data)
            elif self.resp_size < limit:
                self.resp_data.append(data[: limit - self.resp_size])
                self.resp_truncated = True
            else:
                self.resp_truncated = True
            self.resp_size += len(data)
        if not self.resp_truncated:
            self.resp_raw.append(event.raw)
        if self.holding:
            if not self.resp_truncated:
                return
            # too big to hold: what was held goes out now, the rest streams (rules saw only a part)
            self.holding = False
            self.notes.append("response larger than capture_body_bytes: streamed, response rules not applied")
            self.send_head(self.resp_head)
            held = b"".join(self.resp_raw[2:])
            if held:
                self.conn.write(held)
            self.conn.write(event.raw)
            return
        self.conn.write(event.raw)

    def response_end(self, event: End) -> None:
        up = self.upstream
        self.upstream = None
        if event.raw and not self.resp_truncated:
            self.resp_raw.append(event.raw)
        if up is not None:
            if self.resp_head is not None and self.resp_head.keep_alive() and up.reader.idle:
                self.channel.release(up)
            else:
                up.flight = None
                up.transport.loseConnection()
        head = self.resp_head
        body = b"".join(self.resp_data)
        channel = self.channel
        req_meta = self.view.meta if self.view is not None else {}
        resp_meta = channel.codec.response_meta(req_meta, head.status, head.mapping(), body)
        if not self.holding:
            if event.raw:
                self.conn.write(event.raw)
            self.complete(head, body, resp_meta, outcome=None)
            return
        plan = self.plan or HttpPlan()
        engine = channel.faults
        if engine is not None and engine.has_rules("response") and self.fault is None:
            view = HttpView(
                channel.config.kind,
                self.head.method,
                self.head.target,
                head,
                body,
                {**req_meta, **resp_meta},
                status=head.status,
                request=self.view,
            )
            ctx = FaultContext(channel=channel.name, request=b"".join(self.req_data), request_meta=self.view)
            self.fault = engine.decide("response", body, view, ctx, plan=plan)
            self.plan = plan
        for action in self.session.response_complete(self.fault, plan):
            cls = action.__class__
            if cls is Relay and action.plan is None:
                self.complete(head, body, resp_meta, outcome=None, raw=b"".join(self.resp_raw[2:]))
            elif cls is Reset:
                self.finish("fault", None, RESET_TEXT, abort=True, upstream=(head, body, resp_meta))
            elif cls is Reply:
                self.notes.append(f"upstream answered {head.status}; replaced by a fault rule")
                self.send_reply(action.reply, outcome="fault", upstream=(head, body, resp_meta))
            else:  # the upstream's response edited (malformed, truncate) or later / slower (delay, slow_body)
                raw = b"".join(self.resp_raw[2:])
                close = self.close_after or self.conn.closing
                out = render(action.plan, head, body, raw, method=self.head.method, close=close)
                self.send_rendered(out, head, resp_meta)

    def send_rendered(self, out: Rendered, head: Head, meta: dict) -> None:
        self.close_after = self.close_after or out.close
        self.status_sent = head.status
        ex = self.exchange("fault" if out.edited else "ok", out.data)
        self.fill(ex, head.status, meta, "fault" if out.edited else None)
        self.capture(ex, out.data, bps=out.bps, hold=out.hold_s)

    def response_broken(self, problem: str) -> None:
        self.run(self.session.response_broken(problem))

    def upstream_lost(self, up: UpstreamConnection, events: list, reason: Any) -> None:
        if self.done or up is not self.upstream:
            return
        # what it did send goes on; cut short by the close it is not malformed but a lost upstream
        self.response_events([e for e in events if e.__class__ is not Broken])
        if self.done:
            return
        why = reason.getErrorMessage() if reason is not None else "connection closed"
        self.upstream = None
        self.run(self.session.upstream_closed(up.got_bytes, why))

    # -- answering and capturing ---------------------------------------------------------------------

    def send_own(self, status: int, reason: str, text: str, *, outcome: str, error: str) -> None:
        close = self.close_after or self.conn.closing or not self.req_done
        data = error_reply(status, reason, text, close=close)
        if close:
            self.close_after = True
        self.status_sent = status
        ex = self.exchange(outcome, data, error=error)
        ex.status = status
        self.capture(ex, data)

    def send_reply(self, reply: HttpReply, *, outcome: str, upstream: tuple | None = None) -> None:
        headers = [(k, v) for k, v in reply.headers if k.lower() not in ("content-length", "connection")]
        headers.append(("Content-Length", str(len(reply.body))))
        if self.close_after or self.conn.closing or not self.req_done:
            headers.append(("Connection", "close"))
            self.close_after = True
        data = build_head(f"HTTP/1.1 {reply.status} {reply.reason}", headers) + reply.body
        self.status_sent = reply.status
        ex = self.exchange(outcome, data)
        ex.status = reply.status
        if upstream is not None:
            ex.meta["upstream_status"] = upstream[0].status
        meta = self.channel.codec.response_meta(ex.meta, reply.status, dict(headers), reply.body)
        self.fill(ex, reply.status, meta, outcome)
        self.capture(ex, data, hold=self.plan.hold_s if self.plan else 0.0)

    def complete(
        self, head: Head, body: bytes, meta: dict, *, outcome: str | None, raw: bytes | None = None
    ) -> None:
        """A relayed response: captured, and (when held) written after the commit."""
        stored = b"".join(self.resp_raw)
        ex = self.exchange("ok", stored)
        self.fill(ex, head.status, meta, outcome)
        if self.resp_truncated:
            ex.notes.append(
                f"response body truncated in the capture: kept {len(body)} of {self.resp_size} bytes"
            )
        if raw is None:
            self.capture(ex, None)
            return
        out = render(
            None, head, body, raw, method=self.head.method, close=self.close_after or self.conn.closing
        )
        self.close_after = self.close_after or out.close
        self.status_sent = head.status
        self.capture(ex, out.data)

    def fill(self, ex: Exchange, status: int, meta: dict, outcome: str | None) -> None:
        kind = self.channel.config.kind
        ex.status = status
        ex.meta.update(meta)
        ex.ack_code = http_summary.ack_code(kind, status, meta)
        if outcome is None:
            ex.outcome = http_summary.response_outcome(kind, status, meta)

    def exchange(self, outcome: str, response: bytes | None, *, error: str | None = None) -> Exchange:
        channel = self.channel
        kind = channel.config.kind
        meta = dict(self.view.meta) if self.view is not None else {}
        if self.resp_head is not None and response is not None and outcome != "ok":
            meta["upstream_status"] = self.resp_head.status
        request = b"".join(self.req_raw)
        notes = list(self.notes)
        if self.req_truncated:
            notes.append(
                f"request body truncated in the capture: kept {len(b''.join(self.req_data))} of "
                f"{self.req_size} bytes"
            )
        ex = Exchange(
            channel=channel.name,
            protocol="http",
            kind=kind,
            started_at=self.started,
            client_addr=self.conn.client_addr,
            upstream_addr=self.upstream_addr,
            request=request,
            response=response,
            outcome=outcome,
            message_type=http_summary.message_type(kind, meta),
            control_id=http_summary.control_id(kind, meta),
            method=self.head.method,
            path=self.head.target,
            meta=meta,
            error=error,
            notes=notes,
        )
        if self.fault is not None:
            ex.fault = self.fault.record()
        ex.finish()
        return ex

    def capture(
        self,
        ex: Exchange,
        data: bytes | None,
        *,
        bps: int | None = None,
        hold: float = 0.0,
    ) -> None:
        """Count and store the exchange; `data` (what the client still has to get) goes out once the
        capture allows it (durable: after the commit)."""
        self.done = True
        self.session.finished()
        for timer in self.timers.values():
            if timer.active():
                timer.cancel()
        channel = self.channel
        stats = channel.stats
        stats.outcome(ex.outcome)
        if ex.latency_ms is not None:
            stats.observe_latency(ex.latency_ms / 1000.0)
        if ex.outcome not in ("ok", "nak", "fault"):
            channel.warn(ex)

        def release() -> None:
            if data:
                self.conn.write(data, bps)
            self.conn.flight_done(self)

        def go() -> None:
            if hold:
                channel.reactor.callLater(hold, release)
            else:
                release()

        writer = channel.writer
        if writer is None:
            go()
            return
        if not channel.durable:
            try:
                writer.submit(ex)
            except Exception as exc:  # noqa: BLE001 - a closed writer must not kill the connection
                channel.store_errors += 1
                channel.log("error", f"capture failed: {exc}")
            go()
            return
        call = channel.reactor.callFromThread

        def committed(result: Any) -> None:
            call(after_commit, result)

        def after_commit(result: Any) -> None:
            if isinstance(result, BaseException):
                channel.store_errors += 1
                channel.log(
                    "error", f"channel {channel.name}: capture commit failed, response withheld: {result}"
                )
                self.conn.close(abort=True)
                self.conn.flight_done(self)
                return
            go()

        try:
            writer.submit(ex, committed)
        except Exception as exc:  # noqa: BLE001
            after_commit(exc)

    def finish(
        self,
        outcome: str,
        response: bytes | None,
        error: str,
        *,
        abort: bool = False,
        close: bool = False,
        upstream: tuple | None = None,
    ) -> None:
        """The client gets no (complete) response: record why and drop its connection."""
        ex = self.exchange(outcome, response, error=error)
        if upstream is not None:
            head, _body, meta = upstream
            ex.meta.update(meta)
            ex.meta["upstream_status"] = head.status
        if self.status_sent is not None:
            ex.status = self.status_sent
        self.close_after = True
        self.conn.close(abort=abort)
        self.capture(ex, None)


class ClientConnection(protocol.Protocol, TimeoutMixin):
    """One client connection: reads requests in order, one in flight at a time."""

    def __init__(self, channel: HTTPChannel) -> None:
        self.channel = channel
        self.reader = MessageReader(request=True)
        self.events: deque = deque()
        self.flight: Flight | None = None
        self.connected = False
        self.closing = False
        self.client_addr = "?"
        self.client_host = "?"
        self.outbox = Outbox(channel.reactor)
        self._paused_by: set[str] = set()
        self._corked: list[bytes] | None = None
        self.last_data = b""

    def connectionMade(self) -> None:
        set_nodelay(self.transport)
        peer = self.transport.getPeer()
        self.client_host = str(getattr(peer, "host", "?"))
        self.client_addr = f"{self.client_host}:{getattr(peer, 'port', '?')}"
        self.outbox.transport = self.transport
        self.connected = True
        self.channel.connections.add(self)
        self.channel.stats.connection_opened()
        self.setTimeout(self.channel.config.idle_timeout_s)
        writer = self.channel.writer
        if writer is not None and getattr(writer, "saturated", False):
            self.set_store_pressure(True)

    def dataReceived(self, data: bytes) -> None:
        self.channel.stats.bytes_in += len(data)
        self.resetTimeout()
        if self.closing:
            return
        self.last_data = data[:65536]
        self.events.extend(self.reader.feed(data))
        self.pump()

    def cork(self) -> None:
        self._corked = []

    def uncork(self) -> None:
        held = self._corked
        self._corked = None
        if held:  # (a close in between already flushed and stopped the corking)
            self.write(b"".join(held))

    def connectionLost(self, reason: Any = None) -> None:
        self.connected = False
        self.setTimeout(None)
        self.outbox.transport = None
        self.channel.connections.discard(self)
        self.channel.stats.connection_closed()
        flight = self.flight
        if flight is not None and not flight.done:
            flight.run(flight.session.client_closed())

    def timeoutConnection(self) -> None:
        if self.flight is None:
            self.transport.loseConnection()
        else:
            self.resetTimeout()

    def pump(self) -> None:
        events = self.events
        while events and not self.closing:
            flight = self.flight
            event = events[0]
            cls = event.__class__
            if cls is Head:
                if flight is not None:
                    return  # the next request waits until this one is answered
                events.popleft()
                self.begin(event)
            elif cls is Body:
                if flight is None or flight.req_done:
                    return
                events.popleft()
                flight.request_body(event)
            elif cls is End:
                if flight is None or flight.req_done:
                    return
                events.popleft()
                flight.request_end(event)
                if flight.upstream is not None and flight.req_done:
                    flight.request_streamed()
            elif cls is Broken:
                if flight is not None and not flight.req_done and flight.forwarding:
                    events.popleft()
                    flight.run(flight.session.request_broken(event.problem))
                    return
                if flight is not None and flight.req_done:
                    return  # bad bytes after a complete request: refused once that one is answered
                events.popleft()
                head = None
                if flight is not None:  # a body still being read (not yet forwarded) is broken
                    self.flight = None
                    flight.done = True
                    flight.session.finished()
                    head = flight.head
                self.refuse(
                    event.status,
                    _REASONS.get(event.status, "Bad Request"),
                    f"bad request: {event.problem}",
                    head,
                )
                return

    def begin(self, head: Head) -> None:
        cfg = self.channel.config
        length = head.content_length
        if length is not None and length > cfg.max_body_bytes:
            self.refuse(
                413,
                "Content Too Large",
                f"request body of {length} bytes is larger than max_body_bytes ({cfg.max_body_bytes}); "
                "not forwarded",
                head,
            )
            return
        flight = Flight(self, head)
        self.flight = flight
        if (head.get("Expect") or "").lower() == "100-continue":
            flight.answered_continue = True
            self.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def refuse(self, status: int, reason: str, text: str, head: Head | None = None) -> None:
        """Answer bad input ourselves and close: the rest of this connection's bytes cannot be trusted.
        Without a request in flight the refusal is captured too (`malformed`, or `error` for 413), with
        the head, or else the bytes last received."""
        request = head.raw + b"\r\n\r\n" if head is not None else None
        flight = self.flight
        self.closing = True
        self.events.clear()
        data = error_reply(status, reason, f"{status} {reason} from the harness proxy: {text}", close=True)
        if flight is not None and not flight.done:
            up = flight.upstream
            flight.upstream = None
            if up is not None:
                up.flight = None
                up.transport.abortConnection()
            flight.close_after = True
            flight.send_own(
                status,
                reason,
                f"{status} {reason} from the harness proxy: {text}",
                outcome="error",
                error=text,
            )
            return
        outcome = "error" if status == 413 else "malformed"
        self.channel.stats.outcome(outcome)
        ex = Exchange(
            channel=self.channel.name,
            protocol="http",
            kind=self.channel.config.kind,
            client_addr=self.client_addr,
            request=request if request is not None else self.last_data,
            response=data,
            outcome=outcome,
            status=status,
            error=text,
            method=head.method if head is not None else None,
            path=head.target if head is not None else None,
        )
        ex.finish()
        writer = self.channel.writer
        if writer is not None:
            try:
                writer.submit(ex)
            except Exception as exc:  # noqa: BLE001 - a closed writer must not keep the answer back
                self.channel.log("error", f"capture failed: {exc}")
        self.write(data)
        self.close()

    def write(self, data: bytes, bps: int | None = None) -> None:
        if self._corked is not None and bps is None:
            self._corked.append(data)
            return
        if self._corked:
            self.uncork()
        if self.connected and data:
            self.channel.stats.bytes_out += len(data)
            self.outbox.write(data, bps)

    def close(self, abort: bool = False) -> None:
        self.closing = True
        if self._corked:
            self.uncork()
        if self.connected:
            self.outbox.close(abort)

    def flight_done(self, flight: Flight) -> None:
        if flight is not self.flight:
            return
        self.flight = None
        self._resume_all()
        if flight.close_after or not flight.req_done:
            self.close()
            return
        self.pump()

    def pause(self, why: str) -> None:
        if not self._paused_by and self.connected:
            self.transport.pauseProducing()
        self._paused_by.add(why)

    def resume(self, why: str) -> None:
        self._paused_by.discard(why)
        if not self._paused_by and self.connected:
            self.transport.resumeProducing()

    def _resume_all(self) -> None:
        for why in ("stream", "fault"):
            if why in self._paused_by:
                self.resume(why)

    def set_store_pressure(self, on: bool) -> None:
        if on:
            self.pause("store")
        else:
            self.resume("store")


_REASONS = {
    400: "Bad Request",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
    501: "Not Implemented",
}
