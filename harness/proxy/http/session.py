"""One client connection through the HTTP proxy, as a sans-IO state machine.

The Twisted shell (`harness.proxy.http.channel`) feeds it — bytes from the client, an upstream
connection ready or failed, bytes from the upstream, either side closed or unable to take more, a
timer fired — and carries out the commands (`harness.proxy.commands`) it returns. Every decision
lives here, testable without sockets:

- Framing: requests are read by `harness.http_wire` (strict RFC 9112); a request that is not valid,
  or ambiguous, is answered with the reader's status (400, 431, 501, 505), captured `malformed`,
  never forwarded, and the connection closes (its next bytes cannot be trusted). A body over
  `max_body_bytes` gets 413. A response that is not valid becomes 502.
- One request at a time: a pipelined request waits until the one before is answered; requests
  are forwarded in the order they came, each on a clean upstream connection (an idle pooled one
  only once its previous response was read completely), so no answer can reach the wrong client.
- Heads are forwarded as received, rebuilt only to drop hop-by-hop headers (RFC 9110 7.6.1), the
  `Expect` the proxy answered itself, and to set Host or X-Forwarded-For when configured. Bodies
  (chunk framing included) pass through untouched.
- Up to `capture_body_bytes` of a request is held so metadata and fault rules see it; beyond that
  it streams to the upstream and the capture keeps that much, saying so. A response streams as it
  arrives unless something must see it whole (durable capture, response rules, a request fault that
  may edit it): then up to the capture limit is held and the rest streams.
- Fault plans: an answering fault (status, soap_fault, medins_error, reset) stops reading the
  client, waits out its delay and answers; the upstream never sees the request. Other plans wait
  out their delay and forward; response rules decide on the whole response (replace, reset, edit,
  late, slow).
- A request written on a pooled connection that closed before a byte came back is sent once more on
  a fresh connection, when the whole request is still at hand (the stale keep-alive race).
- Never fake success: 502 when no upstream answers or the answer is unreadable or cut, 504 when no
  response head comes within `response_timeout_s`; or the connection closes (`on_upstream_down:
  close`, or when the client already has part of the response).
- Time limits that bytes cannot stretch (slowloris): a head must be complete within
  `head_timeout_s` of its first byte, a body within `body_timeout_s` of its head (else 408), a
  keep-alive connection idle for `idle_timeout_s` is closed.
- Back-pressure: a client that does not read pauses the upstream, an upstream that does not read
  pauses the client, so a connection holds a bounded amount whatever the body sizes.
- Every exchange becomes one `Capture` whose `then` (what the client still gets, a close) the shell
  runs once the capture allows it: durable, after the commit.

States are explicit, as in h11's `_state.py`: `Reading` (the client side) and `Leg` (the upstream side
of the exchange in hand) move only along their transition tables.
"""

from __future__ import annotations

import enum
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from harness import codecs
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
    reason_for,
)
from harness.proxy.commands import (
    CancelTimer,
    Capture,
    CloseClient,
    CloseUpstream,
    Connect,
    Pause,
    ReleaseUpstream,
    Resume,
    Sleep,
    StartTimer,
    ToClient,
    ToUpstream,
)
from harness.proxy.faults.context import FaultContext
from harness.proxy.faults.http_plan import HttpPlan, HttpReply, HttpView
from harness.proxy.http.response import delimited_by_close, render

RESET_TEXT = "client connection reset by a fault rule"
"""The error a fault rule's reset leaves in the capture."""
PIPELINE_BYTES = 256 * 1024
"""Bytes of requests read ahead of the one in hand beyond which the client is no longer read."""
KEPT_BYTES = 64 * 1024
"""Bytes kept of what a client sent when its request never had a readable head (for the capture)."""


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


# -- states ---------------------------------------------------------------------------------------


class Reading(enum.Enum):
    """Where the client side of the connection is."""

    IDLE = "idle"
    """Between requests, nothing of the next one read."""
    HEAD = "head"
    """Part of a request head read."""
    BODY = "body"
    """A head accepted, its body being read and held."""
    STREAM = "stream"
    """The body outgrew the capture limit: it is forwarded as it arrives."""
    DONE = "done"
    """The whole request read; waiting for its answer."""
    CLOSING = "closing"
    """No more requests on this connection (it closes once what it is owed has left)."""
    CLOSED = "closed"
    """The client is gone."""


class Leg(enum.Enum):
    """Where the exchange in hand is on the upstream side."""

    NONE = "none"
    """No exchange in hand."""
    HELD = "held"
    """Reading the request, not yet decided on."""
    DELAYED = "delayed"
    """Waiting out a fault plan's delay."""
    CONNECTING = "connecting"
    """Waiting for an upstream connection."""
    SENT = "sent"
    """The request (or its start) is with the upstream; no response head yet."""
    STREAMING = "streaming"
    """The response head went to the client; the body follows as it arrives."""
    HOLDING = "holding"
    """The response is held until it is whole."""


_READING = {
    Reading.IDLE: {"bytes": Reading.HEAD, "head": Reading.BODY, "close": Reading.CLOSING},
    Reading.HEAD: {"head": Reading.BODY, "close": Reading.CLOSING},
    Reading.BODY: {"end": Reading.DONE, "outgrown": Reading.STREAM, "close": Reading.CLOSING},
    Reading.STREAM: {"end": Reading.DONE, "close": Reading.CLOSING},
    Reading.DONE: {"answered": Reading.IDLE, "close": Reading.CLOSING},
    Reading.CLOSING: {"close": Reading.CLOSING},
    Reading.CLOSED: {},
}
"""The client side's transitions; "gone" leads to CLOSED from anywhere."""

_LEG = {
    Leg.NONE: {"head": Leg.HELD},
    Leg.HELD: {"decided": Leg.CONNECTING, "delay": Leg.DELAYED, "answer": Leg.NONE},
    Leg.DELAYED: {"decided": Leg.CONNECTING, "answer": Leg.NONE},
    Leg.CONNECTING: {"ready": Leg.SENT, "answer": Leg.NONE},
    Leg.SENT: {"stream": Leg.STREAMING, "hold": Leg.HOLDING, "retry": Leg.CONNECTING, "answer": Leg.NONE},
    Leg.STREAMING: {"answer": Leg.NONE},
    Leg.HOLDING: {"stream": Leg.STREAMING, "answer": Leg.NONE},
}
"""The upstream side's transitions; "answer" (the exchange is over) leads to NONE from anywhere."""


class SessionBug(RuntimeError):
    """A transition the tables do not allow: a bug in the session, never a peer's doing."""


def _next(table: dict, state: Any, event: str) -> Any:
    try:
        return table[state][event]
    except KeyError:
        raise SessionBug(f"no transition from {state} on {event!r}") from None


@dataclass(frozen=True, slots=True)
class SessionSettings:
    """The channel settings a session needs (from `harness.proxy.http.config.HTTPChannelConfig`)."""

    channel: str = ""
    kind: str = "raw"
    durable: bool = False
    """Durable capture: every response that fits the capture limit is held until its commit."""
    response_timeout_s: float = 30.0
    on_upstream_down: str = "status"
    on_store_error: str = "status"
    max_body_bytes: int = 64 * 1024 * 1024
    capture_body_bytes: int = 1024 * 1024
    rewrite_host: bool = False
    x_forwarded_for: bool = False
    tls: bool = False
    idle_timeout_s: float = 120.0
    head_timeout_s: float = 30.0
    body_timeout_s: float = 120.0

    @classmethod
    def from_channel(cls, config: Any, *, durable: bool = False) -> SessionSettings:
        return cls(
            channel=config.name,
            kind=config.kind,
            durable=durable,
            response_timeout_s=config.response_timeout_s,
            on_upstream_down=config.on_upstream_down,
            on_store_error=config.on_store_error,
            max_body_bytes=config.max_body_bytes,
            capture_body_bytes=config.capture_body_bytes,
            rewrite_host=config.rewrite_host,
            x_forwarded_for=config.x_forwarded_for,
            tls=config.tls is not None,
            idle_timeout_s=config.idle_timeout_s,
            head_timeout_s=config.head_timeout_s,
            body_timeout_s=config.body_timeout_s,
        )


class _Exchange:
    """One request on its way through: its capture bookkeeping, plan and response."""

    __slots__ = (
        "head", "started", "req_raw", "req_data", "req_size", "req_kept", "req_truncated", "req_done",
        "pending", "view", "plan", "fault", "after_delay", "resp_head", "resp_raw", "resp_data",
        "resp_size", "resp_truncated", "head_sent", "close_after", "answered_continue", "notes",
        "status_sent", "upstream_addr", "reused", "retried", "got_bytes", "sent_whole",
    )  # fmt: skip

    def __init__(self, head: Head) -> None:
        self.head = head
        self.started = time.time()
        self.req_raw: list[bytes] = [head.raw, b"\r\n\r\n"]
        self.req_data: list[bytes] = []
        self.req_size = 0
        self.req_kept = 0
        """Body wire bytes kept for the capture (at most capture_body_bytes)."""
        self.req_truncated = False
        self.req_done = False
        self.pending: list[bytes] = []
        """Request bytes read but not yet written to an upstream."""
        self.view: HttpView | None = None
        self.plan: HttpPlan | None = None
        self.fault: Any = None
        self.after_delay: str = ""
        """What follows the plan's delay: `connect`, `reply` or `reset`."""
        self.resp_head: Head | None = None
        self.resp_raw: list[bytes] = []
        self.resp_data: list[bytes] = []
        self.resp_size = 0
        self.resp_truncated = False
        self.head_sent = False
        self.close_after = not head.keep_alive()
        self.answered_continue = False
        self.notes: list[str] = []
        self.status_sent: int | None = None
        self.upstream_addr: str | None = None
        self.reused = False
        self.retried = False
        self.got_bytes = False
        self.sent_whole = False
        """The whole request has been written to the upstream connection."""


class HttpSession:
    """One client connection: every decision, as commands for the shell."""

    def __init__(
        self,
        settings: SessionSettings,
        *,
        client_addr: str = "?",
        faults: Any = None,
        clock: Any = time.time,
        store_ok: Any = None,
    ) -> None:
        self.settings = settings
        self.store_ok = store_ok
        """Durable channels: whether the store can record now; while it cannot, nothing is forwarded."""
        self.client_addr = client_addr
        self.client_host = client_addr.rpartition(":")[0] or client_addr
        self.faults = faults
        self.codec = codecs.get(settings.kind)
        self.reader = MessageReader(request=True)
        self.up_reader: MessageReader | None = None
        self.queue: deque = deque()
        """Events read from the client and not yet handled (a pipelined request waits here)."""
        self.queued = 0
        self.reading = Reading.IDLE
        self.leg = Leg.NONE
        self.ex: _Exchange | None = None
        self.last_data = b""
        self.timers: set[str] = set()
        """Timers this session started and has not cancelled (only those are cancelled)."""
        self.paused: set[str] = set()
        """Reasons this session stopped reading the client for."""

    # -- state -------------------------------------------------------------------------------------

    def _start(self, out: list, key: str, seconds: float) -> None:
        self.timers.add(key)
        out.append(StartTimer(key, seconds))

    def _cancel(self, out: list, *keys: str) -> None:
        timers = self.timers
        for key in keys:
            if key in timers:
                timers.discard(key)
                out.append(CancelTimer(key))

    def _pause(self, out: list, reason: str) -> None:
        """Stop reading the client for `reason`."""
        if reason not in self.paused:
            self.paused.add(reason)
            out.append(Pause("client", reason))

    def _resume(self, out: list, *reasons: str) -> None:
        paused = self.paused
        for reason in reasons:
            if reason in paused:
                paused.discard(reason)
                out.append(Resume("client", reason))

    def _read(self, event: str) -> None:
        self.reading = _next(_READING, self.reading, event)

    def _go(self, event: str) -> None:
        self.leg = Leg.NONE if event == "answer" else _next(_LEG, self.leg, event)

    @property
    def finished(self) -> bool:
        """Nothing more will happen on this connection."""
        return self.reading is Reading.CLOSED or (self.reading is Reading.CLOSING and self.ex is None)

    def start(self) -> list:
        """The client connected."""
        out: list = []
        self._start(out, "idle", self.settings.idle_timeout_s)
        return out

    # -- the client ----------------------------------------------------------------------------------

    def client_data(self, data: bytes) -> list:
        if self.reading in (Reading.CLOSING, Reading.CLOSED) or not data:
            return []
        out: list = []
        self.last_data = (self.last_data + data)[-KEPT_BYTES:] if self.ex is None else b""
        if self.reading is Reading.IDLE and self.ex is None:
            self._read("bytes")
            self._cancel(out, "idle")
            self._start(out, "head", self.settings.head_timeout_s)
        events = self.reader.feed(data)
        self.queue.extend(events)
        if self.ex is not None and self.ex.req_done:
            self.queued += len(data)
            if self.queued > PIPELINE_BYTES:
                self._pause(out, "pipeline")
        self._pump(out)
        return out

    def client_closed(self) -> list:
        """The client went away (or reset)."""
        out: list = []
        self._cancel(out, "idle", "head", "body")
        ex = self.ex
        self.reading = Reading.CLOSED
        self.queue.clear()
        if ex is not None:
            out.append(CloseUpstream(abort=True))
            self._capture_cut(out, "error", "client closed the connection before the response")
        return out

    def client_full(self, full: bool) -> list:
        """The client's transport cannot take more (`full`) or can again: pause the upstream meanwhile."""
        return [Pause("upstream", "client") if full else Resume("upstream", "client")]

    def upstream_full(self, full: bool) -> list:
        """The upstream's transport cannot take more of the request body (or can again)."""
        out: list = []
        if full:
            self._pause(out, "upstream")
        else:
            self._resume(out, "upstream")
        return out

    def _pump(self, out: list) -> None:
        queue = self.queue
        while queue and self.reading not in (Reading.CLOSING, Reading.CLOSED):
            ex = self.ex
            event = queue[0]
            cls = event.__class__
            if ex is not None and ex.req_done:
                return  # the next request waits until this one is answered
            queue.popleft()
            if cls is Head:
                self._begin(event, out)
            elif cls is Body:
                self._request_body(event, out)
            elif cls is End:
                self._request_end(event, out)
            elif cls is Broken:
                self._broken(event, out)

    def _begin(self, head: Head, out: list) -> None:
        settings = self.settings
        self._read("head")
        self._cancel(out, "head")
        length = head.content_length
        if length is not None and length > settings.max_body_bytes:
            text = (
                f"request body of {length} bytes is larger than max_body_bytes "
                f"({settings.max_body_bytes}); not forwarded"
            )
            self._refuse(out, 413, "Content Too Large", text, head=head, outcome="error")
            return
        if self.store_ok is not None and not self.store_ok():
            self._refuse_unrecordable(out, head)
            return
        ex = self.ex = _Exchange(head)
        self._go("head")
        self.last_data = b""
        if (head.get("Expect") or "").lower() == "100-continue":
            ex.answered_continue = True
            out.append(ToClient(b"HTTP/1.1 100 Continue\r\n\r\n"))
        if head.chunked or head.content_length:
            self._start(out, "body", settings.body_timeout_s)

    def _request_body(self, event: Body, out: list) -> None:
        ex = self.ex
        settings = self.settings
        data = event.data
        if data:
            ex.req_size += len(data)
            if ex.req_size > settings.max_body_bytes:
                sent = "the upstream got only its first part" if self.leg is not Leg.HELD else "not forwarded"
                text = f"request body larger than max_body_bytes ({settings.max_body_bytes} bytes); {sent}"
                self._refuse(out, 413, "Content Too Large", text, outcome="error")
                return
        if not ex.req_truncated:
            room = settings.capture_body_bytes - ex.req_kept
            if len(event.raw) <= room:
                ex.req_raw.append(event.raw)
                ex.req_kept += len(event.raw)
                if data:
                    ex.req_data.append(data)
            else:  # keep what fits (wire bytes; the capture says it is a part)
                ex.req_truncated = True
                ex.req_raw.append(event.raw[:room])
                ex.req_kept += room
                if data:
                    ex.req_data.append(data[:room])
        if self.leg is Leg.SENT or self.leg is Leg.STREAMING or self.leg is Leg.HOLDING:
            out.append(ToUpstream(event.raw))
            return
        ex.pending.append(event.raw)
        if ex.req_truncated and self.leg is Leg.HELD:
            self._read("outgrown")
            self._decide(out, streaming=True)

    def _request_end(self, event: End, out: list) -> None:
        ex = self.ex
        ex.req_done = True
        self._cancel(out, "body")
        if self.reading is not Reading.CLOSING:
            self._read("end")
        if event.raw:
            if not ex.req_truncated:
                ex.req_raw.append(event.raw)
            if self.leg in (Leg.SENT, Leg.STREAMING, Leg.HOLDING):
                out.append(ToUpstream(event.raw))
            else:
                ex.pending.append(event.raw)
        if self.leg in (Leg.SENT, Leg.STREAMING, Leg.HOLDING):
            ex.sent_whole = True
            self._resume(out, "stream")
        if self.leg is Leg.HELD:
            self._decide(out, streaming=False)

    def _broken(self, event: Broken, out: list) -> None:
        ex = self.ex
        status = event.status
        text = f"bad request: {event.problem}"
        if ex is not None and self.leg is not Leg.HELD:
            # the body was already on its way: the upstream is cut off before it has a whole request
            out.append(CloseUpstream(abort=True))
            ex.notes.append("the upstream got part of this request and was cut off")
        self._refuse(out, status, reason_for(status), text, head=ex.head if ex else None, outcome="malformed")

    def _refuse_unrecordable(self, out: list, head: Head) -> None:
        """A durable channel whose store cannot record: nothing is forwarded; 503 (or a close) says so.

        Nothing waits for this refusal's own capture: the store is why it is refused."""
        text = "the capture store cannot record exchanges now; not forwarded"
        self.queue.clear()
        self._read("close")
        self._cancel(out, "head", "body")
        self._pause(out, "closing")
        message = f"503 Service Unavailable from the harness proxy: {text}"
        data = error_reply(503, "Service Unavailable", message, close=True)
        if self.settings.on_store_error == "close":
            record, then = self._refusal(head, None, 503, text, "error"), [CloseClient()]
        else:
            record, then = self._refusal(head, data, 503, text, "error"), [ToClient(data), CloseClient()]
        out.append(Capture(record, then, optional=True))

    def _refusal(
        self, head: Head | None, data: bytes | None, status: int, text: str, outcome: str
    ) -> Exchange:
        """The record of a request the proxy answered itself before it became an exchange."""
        record = Exchange(
            channel=self.settings.channel,
            protocol="http",
            kind=self.settings.kind,
            client_addr=self.client_addr,
            request=head.raw + b"\r\n\r\n" if head is not None else self.last_data,
            response=data,
            outcome=outcome,
            status=status if data is not None else None,
            error=text,
            method=head.method if head is not None else None,
            path=head.target if head is not None else None,
        )
        record.finish()
        return record

    def _refuse(
        self, out: list, status: int, reason: str, text: str, *, head: Head | None = None, outcome: str
    ) -> None:
        """Answer bad input ourselves and close: the rest of this connection's bytes cannot be trusted."""
        ex = self.ex
        self.queue.clear()
        self._read("close")
        self._cancel(out, "head", "body")
        self._pause(out, "closing")
        message = f"{status} {reason} from the harness proxy: {text}"
        if ex is not None and (ex.head_sent or ex.status_sent is not None):
            self._capture_cut(out, outcome, text, abort=True)
            return
        data = error_reply(status, reason, message, close=True)
        if ex is None:
            record = self._refusal(head, data, status, text, outcome)
            out.append(Capture(record, [ToClient(data), CloseClient()]))
            return
        ex.close_after = True
        ex.status_sent = status
        record = self._exchange(outcome, data, error=text)
        record.status = status
        self._finish(out, record, [ToClient(data)])

    # -- deciding ------------------------------------------------------------------------------------

    def _decide(self, out: list, *, streaming: bool) -> None:
        """The request is complete (or too big to hold): read its metadata, apply the rules, forward."""
        ex = self.ex
        settings = self.settings
        head = ex.head
        body = b"".join(ex.req_data)
        meta = self.codec.request_meta(head.method, head.target, head.mapping(), body)
        ex.view = HttpView(
            settings.kind, head.method, head.target, head, body, meta, body_complete=not streaming
        )
        if streaming:
            ex.notes.append(
                f"request body over capture_body_bytes ({settings.capture_body_bytes}): streamed; "
                "metadata and rules saw only the first part"
            )
            self._pause(out, "stream")  # until an upstream takes the rest
        plan = HttpPlan()
        engine = self.faults
        if engine is not None and engine.has_rules("request"):
            ex.fault = engine.decide(
                "request", body, ex.view, FaultContext(channel=settings.channel), plan=plan
            )
        if ex.fault is not None or engine is not None and engine.has_rules("response"):
            ex.plan = plan
        if ex.fault is not None and not plan.forward:
            self._pause(out, "fault")  # what follows is not read until this one is answered
            ex.after_delay = "reset" if plan.reset else "reply"
        else:
            ex.after_delay = "connect"
        if plan.delay_s:
            self._go("delay")
            self._start(out, "delay", plan.delay_s)
            return
        self._after_delay(out)

    def _after_delay(self, out: list) -> None:
        ex = self.ex
        step = ex.after_delay
        if step == "connect":
            self._go("decided")
            out.append(Connect())
        elif step == "reset":
            self._capture_cut(out, "fault", RESET_TEXT, abort=True)
        else:
            self._send_reply(out, ex.plan.reply, outcome="fault")

    # -- the upstream ----------------------------------------------------------------------------------

    def upstream_ready(self, reused: bool, address: str) -> list:
        """An upstream connection is ours: the request (head and what there is of its body) goes out."""
        ex = self.ex
        if ex is None or self.leg is not Leg.CONNECTING:
            return [ReleaseUpstream()]
        self._go("ready")
        ex.reused = reused
        ex.got_bytes = False
        ex.upstream_addr = address
        self.up_reader = MessageReader(request=False, request_method=ex.head.method)
        pending, ex.pending = ex.pending, []
        out = [ToUpstream(self._request_head(address) + b"".join(pending))]
        if ex.req_done:
            ex.sent_whole = True
        else:
            self._resume(out, "stream")
        self._start(out, "response", self.settings.response_timeout_s)
        return out

    def _request_head(self, address: str) -> bytes:
        """The head for the upstream: as received when nothing is dropped or added."""
        ex = self.ex
        settings = self.settings
        head = ex.head
        headers = forward_headers(head, drop=("expect",) if ex.answered_continue else ())
        if settings.rewrite_host:
            headers = [("Host", address) if k.lower() == "host" else (k, v) for k, v in headers]
            if not any(k.lower() == "host" for k, _ in headers):
                headers.insert(0, ("Host", address))
        if settings.x_forwarded_for:
            prior = head.get("X-Forwarded-For")
            headers = [
                (k, v) for k, v in headers if k.lower() not in ("x-forwarded-for", "x-forwarded-proto")
            ]
            headers.append(("X-Forwarded-For", f"{prior}, {self.client_host}" if prior else self.client_host))
            headers.append(("X-Forwarded-Proto", "https" if settings.tls else "http"))
        if len(headers) == len(head.headers) and not (settings.rewrite_host or settings.x_forwarded_for):
            return head.raw + b"\r\n\r\n"
        return build_head(head.start, headers)

    def upstream_failed(self, why: str) -> list:
        """No upstream (nor backup) accepted a connection."""
        if self.ex is None or self.leg is not Leg.CONNECTING:
            return []
        text = f"upstream unavailable: {why}" if why else "upstream unavailable"
        out: list = []
        if self.settings.on_upstream_down == "close":
            self._capture_cut(out, "upstream_down", text)
        else:
            message = f"502 Bad Gateway from the harness proxy: channel {self.settings.channel}: {text}"
            self._send_own(out, 502, "Bad Gateway", message, outcome="upstream_down", error=text)
        return out

    def upstream_data(self, data: bytes) -> list:
        if self.ex is None or self.leg not in (Leg.SENT, Leg.STREAMING, Leg.HOLDING):
            return [CloseUpstream(abort=True)]  # bytes nobody asked for: the connection cannot be trusted
        self.ex.got_bytes = True
        out: list = []
        self._response_events(self.up_reader.feed(data), out)
        return _coalesced(out)

    def upstream_closed(self, why: str) -> list:
        """The upstream connection in use closed."""
        ex = self.ex
        if ex is None or self.leg not in (Leg.SENT, Leg.STREAMING, Leg.HOLDING):
            return []
        out: list = []
        # what it did send goes on; cut short by the close it is not malformed but a lost upstream
        events = [e for e in self.up_reader.close() if e.__class__ is not Broken]
        self._response_events(events, out, closed=True)
        if self.ex is not ex:
            return out
        if (
            ex.reused
            and not ex.got_bytes
            and not ex.retried
            and ex.req_done
            and not ex.req_truncated
            and self.leg is Leg.SENT
        ):
            # a pooled connection the upstream had closed: nothing was read, send again on a new one
            ex.retried = True
            ex.pending = [b"".join(ex.req_raw[2:])]
            self._go("retry")
            self._cancel(out, "response")
            return [*out, Connect(fresh=True)]
        if ex.head_sent:  # FIN: the client sees the response cut
            self._capture_cut(out, "upstream_down", f"upstream closed mid-response: {why}")
            return out
        text = f"upstream closed the connection before a complete response: {why}"
        message = f"502 Bad Gateway from the harness proxy: {text}"
        self._send_own(out, 502, "Bad Gateway", message, outcome="upstream_down", error=text)
        return out

    # -- timers --------------------------------------------------------------------------------------

    def timer(self, key: str) -> list:
        self.timers.discard(key)
        out: list = []
        settings = self.settings
        if key == "idle":
            if self.ex is None and self.reading is Reading.IDLE:
                self._read("close")
                out.append(CloseClient())
            return out
        if key in ("head", "body"):
            seconds = settings.head_timeout_s if key == "head" else settings.body_timeout_s
            what = "request head" if key == "head" else "request body"
            text = f"{what} not complete within {key}_timeout_s ({seconds:g} s)"
            if self.reading in (Reading.HEAD, Reading.BODY, Reading.STREAM, Reading.IDLE):
                if self.ex is not None and self.leg is not Leg.HELD:
                    out.append(CloseUpstream(abort=True))
                self._refuse(out, 408, "Request Timeout", text, outcome="error")
            return out
        ex = self.ex
        if ex is None:
            return out
        if key == "delay" and self.leg is Leg.DELAYED:
            self._after_delay(out)
        elif key == "response" and self.leg is Leg.SENT:
            text = (
                f"no response from the upstream within response_timeout_s ({settings.response_timeout_s:g} s)"
            )
            out.append(CloseUpstream(abort=True))
            message = f"504 Gateway Timeout from the harness proxy: {text}"
            self._send_own(out, 504, "Gateway Timeout", message, outcome="timeout", error=text)
        return out

    # -- the response ----------------------------------------------------------------------------------

    def _response_events(self, events: list, out: list, *, closed: bool = False) -> None:
        for event in events:
            ex = self.ex
            if ex is None:
                return
            cls = event.__class__
            if cls is Body:
                self._response_body(event, out)
            elif cls is Head:
                self._response_head(event, out)
            elif cls is End:
                self._response_end(event, out, closed=closed)
            elif cls is Interim:
                if event.head.status != 100 or not ex.answered_continue:
                    out.append(ToClient(event.head.raw + b"\r\n\r\n"))
            elif cls is Broken:
                self._response_broken(event.problem, out)

    def _response_head(self, head: Head, out: list) -> None:
        ex = self.ex
        self._cancel(out, "response")
        ex.resp_head = head
        ex.resp_raw = [head.raw, b"\r\n\r\n"]
        engine = self.faults
        hold = (
            self.settings.durable
            or ex.fault is not None
            or (engine is not None and engine.has_rules("response"))
        )
        if hold:
            self._go("hold")
        else:
            self._go("stream")
            out.append(ToClient(self._client_head(head)))

    def _client_head(self, head: Head, *, length: int | None = None) -> bytes:
        """The response head for the client: as the upstream sent it unless something must change."""
        ex = self.ex
        close = ex.close_after or self.reading is Reading.CLOSING or not ex.req_done
        if length is None and delimited_by_close(head, ex.head.method):
            close = True  # a body delimited by the close: the client can only see its end by ours
        headers = forward_headers(head)
        unchanged = len(headers) == len(head.headers)
        if length is not None:
            headers = [(k, v) for k, v in headers if k.lower() not in ("content-length", "transfer-encoding")]
            headers.append(("Content-Length", str(length)))
            unchanged = False
        if close:
            headers.append(("Connection", "close"))
            ex.close_after = True
            unchanged = False
        elif head.version == "HTTP/1.0" or ex.head.version == "HTTP/1.0":
            headers.append(("Connection", "keep-alive"))
            unchanged = False
        ex.status_sent = head.status
        ex.head_sent = True
        return head.raw + b"\r\n\r\n" if unchanged else build_head(head.start, headers)

    def _response_body(self, event: Body, out: list) -> None:
        ex = self.ex
        data = event.data
        limit = self.settings.capture_body_bytes
        if data:
            if ex.resp_size + len(data) <= limit:
                ex.resp_data.append(data)
            elif ex.resp_size < limit:
                ex.resp_data.append(data[: limit - ex.resp_size])
                ex.resp_truncated = True
            else:
                ex.resp_truncated = True
            ex.resp_size += len(data)
        if not ex.resp_truncated:
            ex.resp_raw.append(event.raw)
        if self.leg is Leg.HOLDING:
            if not ex.resp_truncated:
                return
            # too big to hold: what was held goes out now, the rest streams (rules saw only a part)
            self._go("stream")
            ex.notes.append("response larger than capture_body_bytes: streamed, response rules not applied")
            held = b"".join(ex.resp_raw[2:])
            out.append(ToClient(self._client_head(ex.resp_head) + held + event.raw))
            return
        out.append(ToClient(event.raw))

    def _response_broken(self, problem: str, out: list) -> None:
        ex = self.ex
        text = f"upstream response unreadable: {problem}"
        out.append(CloseUpstream(abort=True))
        if ex.head_sent:
            self._capture_cut(out, "error", text, abort=True)
            return
        self._send_own(
            out,
            502,
            "Bad Gateway",
            f"502 Bad Gateway from the harness proxy: {text}",
            outcome="error",
            error=text,
        )

    def _response_end(self, event: End, out: list, *, closed: bool) -> None:
        ex = self.ex
        head = ex.resp_head
        if event.raw and not ex.resp_truncated:
            ex.resp_raw.append(event.raw)
        if not closed:
            clean = head.keep_alive() and self.up_reader.idle and ex.sent_whole
            out.append(ReleaseUpstream() if clean else CloseUpstream())
        body = b"".join(ex.resp_data)
        req_meta = ex.view.meta if ex.view is not None else {}
        resp_meta = self.codec.response_meta(req_meta, head.status, head.mapping(), body)
        if self.leg is Leg.STREAMING:
            if event.raw:
                out.append(ToClient(event.raw))
            record = self._relayed(b"".join(ex.resp_raw), body)
            self._fill(record, head.status, resp_meta, None)
            self._finish(out, record, [])
            return
        plan = ex.plan or HttpPlan()
        engine = self.faults
        if engine is not None and engine.has_rules("response") and ex.fault is None:
            view = HttpView(
                self.settings.kind,
                ex.head.method,
                ex.head.target,
                head,
                body,
                {**req_meta, **resp_meta},
                status=head.status,
                request=ex.view,
            )
            ctx = FaultContext(
                channel=self.settings.channel, request=b"".join(ex.req_data), request_meta=ex.view
            )
            ex.fault = engine.decide("response", body, view, ctx, plan=plan)
            ex.plan = plan
        upstream = (head, resp_meta)
        if ex.fault is not None and plan.reset:
            self._capture_cut(out, "fault", RESET_TEXT, abort=True, upstream=upstream)
            return
        if ex.fault is not None and plan.reply is not None:
            ex.notes.append(f"upstream answered {head.status}; replaced by a fault rule")
            self._send_reply(out, plan.reply, outcome="fault", upstream=upstream)
            return
        # relayed: as received, or edited (malformed, truncate) or later / slower (delay, slow_body)
        close = ex.close_after or self.reading is Reading.CLOSING
        rendered = render(
            plan if ex.fault is not None else None,
            head,
            body,
            b"".join(ex.resp_raw[2:]),
            method=ex.head.method,
            close=close,
        )
        ex.close_after = ex.close_after or rendered.close
        ex.status_sent = head.status
        if rendered.edited:
            record = self._exchange("fault", rendered.data)
        else:
            record = self._relayed(b"".join(ex.resp_raw), body)
        self._fill(record, head.status, resp_meta, "fault" if rendered.edited else None)
        then: list = [Sleep(rendered.hold_s)] if rendered.hold_s else []
        then.append(ToClient(rendered.data, rendered.bps))
        self._finish(out, record, then)

    # -- answering and capturing ---------------------------------------------------------------------

    def _send_own(self, out: list, status: int, reason: str, text: str, *, outcome: str, error: str) -> None:
        ex = self.ex
        close = ex.close_after or self.reading is Reading.CLOSING or not ex.req_done
        data = error_reply(status, reason, text, close=close)
        ex.close_after = ex.close_after or close
        ex.status_sent = status
        record = self._exchange(outcome, data, error=error)
        record.status = status
        self._finish(out, record, [ToClient(data)])

    def _send_reply(
        self, out: list, reply: HttpReply, *, outcome: str, upstream: tuple | None = None
    ) -> None:
        ex = self.ex
        headers = [(k, v) for k, v in reply.headers if k.lower() not in ("content-length", "connection")]
        headers.append(("Content-Length", str(len(reply.body))))
        if ex.close_after or self.reading is Reading.CLOSING or not ex.req_done:
            headers.append(("Connection", "close"))
            ex.close_after = True
        data = build_head(f"HTTP/1.1 {reply.status} {reply.reason}", headers) + reply.body
        ex.status_sent = reply.status
        record = self._exchange(outcome, data)
        record.status = reply.status
        if upstream is not None:
            record.meta["upstream_status"] = upstream[0].status
        meta = self.codec.response_meta(record.meta, reply.status, dict(headers), reply.body)
        self._fill(record, reply.status, meta, outcome)
        hold = ex.plan.hold_s if ex.plan is not None else 0.0
        self._finish(out, record, [Sleep(hold), ToClient(data)] if hold else [ToClient(data)])

    def _capture_cut(
        self, out: list, outcome: str, error: str, *, abort: bool = False, upstream: tuple | None = None
    ) -> None:
        """The client gets no (complete) response: record why and close its connection."""
        ex = self.ex
        record = self._exchange(outcome, None, error=error)
        if upstream is not None:
            head, meta = upstream
            record.meta.update(meta)
            record.meta["upstream_status"] = head.status
        if ex.status_sent is not None:
            record.status = ex.status_sent
        ex.close_after = True
        self._finish(out, record, [CloseClient(abort=abort)])

    def _relayed(self, stored: bytes, body: bytes) -> Exchange:
        """The record of a response relayed as the upstream sent it (what the capture kept of it)."""
        ex = self.ex
        record = self._exchange("ok", stored)
        if ex.resp_truncated:
            record.notes.append(
                f"response body truncated in the capture: kept {len(body)} of {ex.resp_size} bytes"
            )
        return record

    def _fill(self, record: Exchange, status: int, meta: dict, outcome: str | None) -> None:
        codec = self.codec
        record.status = status
        record.meta.update(meta)
        record.ack_code = codec.ack_code(status, meta)
        if outcome is None:
            record.outcome = "ok" if codec.accepted(status, meta) else "nak"

    def _exchange(self, outcome: str, response: bytes | None, *, error: str | None = None) -> Exchange:
        ex = self.ex
        settings = self.settings
        codec = self.codec
        meta = dict(ex.view.meta) if ex.view is not None else {}
        if ex.resp_head is not None and response is not None and outcome != "ok":
            meta["upstream_status"] = ex.resp_head.status
        notes = list(ex.notes)
        if ex.req_truncated:
            kept = sum(len(d) for d in ex.req_data)
            notes.append(f"request body truncated in the capture: kept {kept} of {ex.req_size} bytes")
        record = Exchange(
            channel=settings.channel,
            protocol="http",
            kind=settings.kind,
            started_at=ex.started,
            client_addr=self.client_addr,
            upstream_addr=ex.upstream_addr,
            request=b"".join(ex.req_raw),
            response=response,
            outcome=outcome,
            message_type=codec.message_type(meta),
            control_id=codec.control_id(meta),
            method=ex.head.method,
            path=ex.head.target,
            meta=meta,
            error=error,
            notes=notes,
        )
        if ex.fault is not None:
            record.fault = ex.fault.record()
        record.finish()
        return record

    def _finish(self, out: list, record: Exchange, then: list) -> None:
        """The exchange in hand is over: capture it, then serve the next request (or close)."""
        ex = self.ex
        self.ex = None
        self._go("answer")
        self._cancel(out, "delay", "response", "body")
        self._resume(out, "stream", "fault", "pipeline", "upstream")
        if self.leg is not Leg.NONE:  # pragma: no cover - _go("answer") always lands on NONE
            raise SessionBug(f"exchange finished in {self.leg}")
        if ex.close_after or not ex.req_done or self.reading is Reading.CLOSING:
            if not any(c.__class__ is CloseClient for c in then):
                then.append(CloseClient())
            if self.reading is not Reading.CLOSED:
                self._read("close")
            out.append(Capture(record, then))
            return
        out.append(Capture(record, then))
        self.queued = 0
        if self.reading is not Reading.CLOSED:
            self._read("answered")
            if self.queue or not self.reader.idle:
                self._read("bytes")
                self._start(out, "head", self.settings.head_timeout_s)
            else:
                self._start(out, "idle", self.settings.idle_timeout_s)
            self._pump(out)


def _coalesced(commands: list) -> list:
    """Adjacent unthrottled client writes as one (a small response's head and body leave in one send)."""
    out: list = []
    for command in commands:
        if (
            command.__class__ is ToClient
            and command.bps is None
            and out
            and out[-1].__class__ is ToClient
            and out[-1].bps is None
        ):
            out[-1] = ToClient(out[-1].data + command.data)
        else:
            out.append(command)
    return out
