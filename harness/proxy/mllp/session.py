"""One sender connection through the MLLP proxy, as a sans-IO state machine.

The Twisted shell (`harness.proxy.mllp.channel`) feeds it — bytes from the sender, bytes from the upstream,
connections opened, failed and closed, timers fired — and carries out the actions it returns. Every
decision lives here, testable without sockets:

- Requests are forwarded as MLLP frames around the exact payload bytes received; at most
  `max_in_flight` are outstanding at the upstream, the rest wait in order (senders that pipeline
  are served; upstreams that take one message at a time are not overrun).
- What a message expects back is `harness.hl7v2.ackmode.AckMode` (MSH-15/MSH-16): original mode one
  ACK; enhanced mode an accept ACK and then an application ACK as asked; NE/NE nothing. Every reply
  the upstream sends for a message is relayed to the sender in order, and recorded on the message's
  one exchange (`accept_ack_code` / `accept_response` for the accept ACK, `ack_code` / `response` for
  the application ACK). A message stops holding its in-flight slot once its first reply came (or at
  once, when nothing is required back), so a CA lets the next message go as it does for the sender.
- A reply is relayed only when exactly one request can own it: the outstanding request whose
  MSH-10 is the reply's MSA-2 and that can still take that kind of reply (a CA only before any
  reply). A reply that matches nothing outstanding — e.g. one arriving after its request timed out —
  is captured as `late_ack` and never relayed: it could be taken for the ACK of the sender's next
  message. A reply that could belong to more than one request — a current one and one that ended
  unanswered within the late window, or several current ones, when a sender reuses control ids — is
  `ambiguous_ack`, never relayed; the requests keep waiting for replies of their own. A reply without
  MSA-2 belongs to the only request that could own it; with several it is `ambiguous_ack` and the
  proxy acts per `on_ack_timeout`.
- Replies whose MSA-1 is not one of AA AE AR CA CE CR, or that carry no MSA, are relayed when they
  can be attributed and recorded `bad_ack`: never `ok`.
- The upstream connection is opened lazily (the shell tries the upstream and its backups in order)
  and reopened for the next message when the upstream closed after a reply. A request that was
  written on a reused connection which then closed without answering is resent once on a fresh
  connection: a peer that closes after each reply (hl7apy's MLLPServer) may close before it reads
  a message the proxy already wrote (the stale keep-alive case HTTP clients retry too).
- The proxy never answers AA on the upstream's behalf. Upstream down or silent: the sender's
  connection is closed or it gets an AR/CR, per channel setting; the capture says which.
- Every exchange is handed to the capture as a `Capture` action whose `then` actions (the reply to
  the sender, a close) the shell runs only once the capture allows it (durable: after the commit).
  An exchange with two replies is captured at the first (outcome `pending`) and completed in place at
  the second (`Capture.replaces`). Actions bound for the sender keep their order across captures.
"""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.exchange import Exchange
from harness.hl7v2.ackmode import ORIGINAL, AckMode, AckState, reply_kind
from harness.hl7v2.meta import Meta, extract, make_meta
from harness.mllp import (
    EndBlockWithoutCR,
    Frame,
    FrameTooLarge,
    Junk,
    MissingStartBlock,
    MLLPDecoder,
    Truncated,
)
from harness.proxy.faults.context import FaultContext
from harness.proxy.faults.plan import Plan

_VT = b"\x0b"
_END = b"\x1c\r"
_MESSAGE_STARTS = (b"MSH", b"FHS", b"BHS", b"\xef\xbb\xbfMSH")
LATE_MEMORY = 256
"""How many requests that ended unanswered are remembered per connection to tie a late ACK to them."""
PAUSE_AT = 1000
"""Queued requests at which the sender is no longer read from (resumed at a tenth of it)."""
CLOSE_AFTER_REPLY_S = 1.0
"""An upstream that closes its connection this soon after a reply closes after every reply (an idle
timeout on the engine's side takes longer): new connection per message from then on."""
TRUNCATED_KEEP = 65536
"""Bytes of a frame that never ended kept in the capture (the rest is counted, not stored)."""


# -- actions -------------------------------------------------------------------------------------


@dataclass(slots=True)
class Connect:
    """Open an upstream connection (the shell tries the upstream, then each backup in order)."""


@dataclass(slots=True)
class ToUpstream:
    data: bytes
    bps: int | None = None
    """Throttle: write at this many bytes per second."""


@dataclass(slots=True)
class ToSender:
    data: bytes
    bps: int | None = None


@dataclass(slots=True)
class CloseSender:
    abort: bool = False
    """True: reset (RST) instead of a clean close."""


@dataclass(slots=True)
class CloseUpstream:
    pass


@dataclass(slots=True)
class ReplaceUpstream:
    """Close the upstream connection (it answered and will be closed by the peer) and open a new one."""


@dataclass(slots=True)
class StartTimer:
    key: tuple
    seconds: float


@dataclass(slots=True)
class CancelTimer:
    key: tuple


@dataclass(slots=True)
class PauseSender:
    pass


@dataclass(slots=True)
class ResumeSender:
    pass


@dataclass(slots=True)
class Capture:
    """Record `exchange`; then run `then` (bound for the sender) once the capture mode allows it.

    `replaces`: an exchange captured earlier (the `pending` row of a two-reply exchange) that this one
    completes; the store updates that row instead of adding one.
    """

    exchange: Exchange
    then: list = field(default_factory=list)
    replaces: Exchange | None = None
    optional: bool = False
    """Recorded if the store can, but nothing waits for it: a refusal that must reach the sender even
    when the store is why it is refused."""


@dataclass(frozen=True, slots=True)
class SessionSettings:
    """The channel settings one session needs (from `harness.proxy.config.MLLPChannelConfig`)."""

    channel: str = ""
    charset: str | None = None
    ack_timeout_s: float = 30.0
    on_ack_timeout: str = "close"
    on_upstream_down: str = "close"
    on_malformed: str = "forward"
    max_frame_bytes: int = 16 * 1024 * 1024
    max_in_flight: int = 1
    max_pending_bytes: int = 8 * 1024 * 1024
    """Bytes of received requests waiting to be forwarded at which the sender is no longer read from."""
    frame_timeout_s: float = 30.0
    """A frame started and not ended within this is given up: captured as malformed, connection closed."""
    idle_timeout_s: float = 0.0
    """Close a sender connection with nothing in flight and no traffic for this long; 0: never."""
    on_store_error: str = "close"
    """Durable channels, while the store cannot record: close the sender's connection, or `nak` it."""
    resend_on_stale_connection: bool = False
    """Resend a request written on a reused upstream connection that closed without answering (the
    upstream may then see it twice: at-least-once). Off: at-most-once, the sender is told instead."""
    app_ack_timeout_s: float | None = None
    """After a CA, how long the application ACK may take (None: `ack_timeout_s`)."""
    conditional_ack_wait_s: float | None = None
    """How long a reply that only comes on error or success (ER/SU) is waited for (None: `ack_timeout_s`)."""

    @classmethod
    def from_channel(cls, channel: Any) -> SessionSettings:
        return cls(
            channel=channel.name,
            charset=channel.charset,
            ack_timeout_s=channel.ack_timeout_s,
            on_ack_timeout=channel.on_ack_timeout,
            on_upstream_down=channel.on_upstream_down,
            on_malformed=channel.on_malformed,
            max_frame_bytes=channel.max_frame_bytes,
            max_in_flight=channel.max_in_flight,
            max_pending_bytes=channel.max_pending_bytes,
            frame_timeout_s=channel.frame_timeout_s,
            idle_timeout_s=channel.idle_timeout_s,
            on_store_error=channel.on_store_error,
            resend_on_stale_connection=channel.resend_on_stale_connection,
            app_ack_timeout_s=channel.app_ack_timeout_s,
            conditional_ack_wait_s=channel.conditional_ack_wait_s,
        )

    @property
    def app_timeout(self) -> float:
        return self.ack_timeout_s if self.app_ack_timeout_s is None else self.app_ack_timeout_s

    @property
    def conditional_wait(self) -> float:
        return self.ack_timeout_s if self.conditional_ack_wait_s is None else self.conditional_ack_wait_s

    @property
    def late_window(self) -> float:
        """How long a request that ended unanswered can still own a reply that arrives."""
        return max(self.ack_timeout_s, self.app_timeout, self.conditional_wait)


def frame(payload: bytes) -> bytes:
    """MLLP-frame a payload taken from a decoded frame (it cannot hold block characters)."""
    return _VT + payload + _END


class _Request:
    """One request from the sender on its way through the proxy."""

    __slots__ = (
        "seq",
        "payload",
        "meta",
        "key",
        "ack",
        "received_at",
        "forwarded_at",
        "conn",
        "plan",
        "fault",
        "response_faults",
        "altered",
        "ready",
        "on_reused",
        "retried",
        "extra",
        "notes",
        "malformed",
        "ended_at",
        "accept_reply",
        "accept_at",
        "row",
        "answered",
    )

    def __init__(self, seq: int, payload: bytes, meta: Meta, received_at: float) -> None:
        self.seq = seq
        self.payload = payload
        self.meta = meta
        self.key = meta.control_id or ""
        self.ack: AckState = ORIGINAL.start()
        self.received_at = received_at
        self.forwarded_at = 0.0
        self.conn = 0
        """Which upstream connection of the session it was forwarded on (1, 2, ...)."""
        self.plan: Plan | None = None
        self.fault: Any = None
        self.response_faults: list | None = None
        self.altered = False
        """A fault changed what the sender got for one of its replies."""
        self.ready = True
        self.on_reused = False
        self.retried = False
        self.extra = 0
        """Replies still expected from duplicate copies forwarded by a fault."""
        self.notes: list[str] | None = None
        self.malformed = False
        self.ended_at = 0.0
        """When it ended without its (last) reply: timed out, silent, asked for none, unattributable."""
        self.accept_reply: bytes | None = None
        self.accept_at = 0.0
        self.row: Exchange | None = None
        """The `pending` exchange captured at the accept ACK, completed in place by the next capture."""
        self.answered = False
        """A reply that can only be a message's last (AA AE AR CE CR, or one without a usable MSA-1)
        was tied to it: no further reply can be its."""

    def note(self, text: str) -> None:
        if self.notes is None:
            self.notes = []
        self.notes.append(text)


def _exchange_meta(meta: Meta) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("structure", "version", "processing_id", "sending_app", "sending_facility",
                 "receiving_app", "receiving_facility", "accept_ack_type", "app_ack_type"):
        value = getattr(meta, name)
        if value is not None:
            out[name] = value
    if meta.problems:
        out["problems"] = list(meta.problems)
    return out


class MLLPSession:
    """The proxy's decisions for one sender connection (see the module docstring)."""

    def __init__(
        self,
        settings: SessionSettings,
        *,
        client_addr: str | None = None,
        faults: Any = None,
        clock: Callable[[], float] = time.time,
        store_ok: Callable[[], bool] | None = None,
        fresh_per_message: bool = False,
    ) -> None:
        self.settings = settings
        self.client_addr = client_addr
        self.faults = faults
        """The channel's `harness.proxy.faults.engine.FaultEngine`, or None."""
        self.store_ok = store_ok
        """Durable channels: whether the store can record now; while it cannot, nothing is forwarded."""
        self.fresh_per_message = fresh_per_message
        """The upstream closes its connection after each reply (hl7apy's server, some engines): every
        message then goes on a new connection, so none is written to one the peer is closing."""
        self.replies_held = False
        """Set by the shell while it does not read the upstream because the sender is not reading."""
        self.sender_reads_paused = False
        """Set by the shell while it has stopped reading the sender (back-pressure of any kind): an
        unfinished frame is then the proxy's doing, not the sender's, and its timeout starts again."""
        self.clock = clock
        self._sender_decoder = MLLPDecoder(settings.max_frame_bytes)
        self._upstream_decoder = MLLPDecoder(settings.max_frame_bytes)
        self._fault_ctx = FaultContext(
            channel=settings.channel, ack_timeout_s=settings.ack_timeout_s, charset=settings.charset
        )
        self._seq = 0
        self._queue: deque[_Request] = deque()
        self._in_flight: list[_Request] = []
        """Forwarded, no reply yet, a reply required: each holds one of `max_in_flight` slots."""
        self._open: list[_Request] = []
        """Forwarded and still owed a reply without holding a slot (after a CA; ER/SU conditions)."""
        self._duplicates: list[_Request] = []
        self._ended: deque[_Request] = deque(maxlen=LATE_MEMORY)
        """Requests that ended without their (last) reply, oldest first: owners of late replies."""
        self._held: dict[int, list] = {}
        self._hold_seq = 0
        self._frame_notes: list[str] = []
        self.upstream_state = "down"  # down | connecting | up | closing
        self.upstream_addr: str | None = None
        self._conn = 0
        self._replies_on_connection = 0
        self._last_reply_at = 0.0
        self.sender_open = True
        """False once the sender closed or the proxy decided to close it."""
        self.closed_by_proxy = False
        self._sender_connected = True
        self._paused = False
        self._queued_bytes = 0
        self._frame_timer = False
        self._lingering = False
        self.finished = False
        """True once nothing is left to do (the shell may drop the session)."""

    def queued(self) -> int:
        """Requests received from the sender and not yet forwarded."""
        return len(self._queue)

    def awaiting_replies(self, forwarded_since: float = 0.0) -> int:
        """Requests forwarded (at or after `forwarded_since`, session clock) whose reply has not come."""
        return sum(1 for req in (*self._in_flight, *self._open) if req.forwarded_at >= forwarded_since)

    # -- events from the sender ------------------------------------------------------------------

    def sender_data(self, data: bytes) -> list:
        actions: list = []
        decoder = self._sender_decoder
        self._sender_events(decoder.feed(data), actions)
        if decoder.in_frame != self._frame_timer:
            self._frame_timer = decoder.in_frame
            if self._frame_timer:
                actions.append(StartTimer(("frame",), self.settings.frame_timeout_s))
            else:
                actions.append(CancelTimer(("frame",)))
        if self.settings.idle_timeout_s:
            actions.append(StartTimer(("idle",), self.settings.idle_timeout_s))
        return actions

    def _sender_events(self, events: list, actions: list) -> None:
        for event in events:
            if event.__class__ is Frame:
                self._on_frame(event.payload, actions)
            else:
                self._on_sender_problem(event, actions)

    def sender_closed(self) -> list:
        actions: list = []
        self._sender_events(self._sender_decoder.close(), actions)  # a frame ended by 0x1C alone, too
        self.sender_open = False
        self._sender_connected = False
        for key in list(self._held):
            actions.append(CancelTimer(("hold", key)))
        self._held.clear()
        if self.closed_by_proxy:
            # The proxy closed the sender: it got no ACK for what is still queued and will resend it.
            while self._queue:
                req = self._queue.popleft()
                if not req.ready:
                    actions.append(CancelTimer(("delay", req.seq)))
                actions.append(
                    self._capture(
                        req, None, "error", error="not forwarded: the proxy closed the sender's connection"
                    )
                )
            self._queued_bytes = 0
        else:
            # The sender sent these and left: they were accepted on the wire, so they still go.
            self._pump(actions)
        self._maybe_finish(actions)
        return actions

    # -- events from the upstream ----------------------------------------------------------------

    def upstream_connected(self, addr: str) -> list:
        actions: list = []
        self.upstream_state = "up"
        self.upstream_addr = addr
        self._conn += 1
        self._replies_on_connection = 0
        self._pump(actions)
        self._maybe_finish(actions)
        return actions

    def upstream_connect_failed(self, error: str) -> list:
        """No upstream address accepted a connection: every waiting request fails."""
        actions: list = []
        self.upstream_state = "down"
        failed = [req for req in self._queue if req.ready]
        self._queue = deque(req for req in self._queue if not req.ready)
        self._queued_bytes = sum(len(req.payload) for req in self._queue)
        for req in failed:
            self._upstream_down(req, f"upstream unavailable: {error}", actions)
        self._maybe_finish(actions)
        return actions

    def upstream_data(self, data: bytes) -> list:
        actions: list = []
        if self.settings.idle_timeout_s:
            actions.append(StartTimer(("idle",), self.settings.idle_timeout_s))
        for event in self._upstream_decoder.feed(data):
            if event.__class__ is Frame:
                self._on_reply(event.payload, actions)
            else:
                self._on_upstream_problem(event, actions)
        self._maybe_finish(actions)
        return actions

    def upstream_closed(self, reason: str = "connection closed") -> list:
        actions: list = []
        by_peer = self.upstream_state == "up"
        self.upstream_state = "closing"  # nothing more is forwarded on it while its last bytes are read
        for event in self._upstream_decoder.close():  # a reply ended by 0x1C alone is still a reply
            if event.__class__ is Frame:
                self._on_reply(event.payload, actions)
            else:
                self._on_upstream_problem(event, actions)
        self.upstream_state = "down"
        if (
            by_peer
            and self._replies_on_connection
            and not self._open
            and self.clock() - self._last_reply_at < CLOSE_AFTER_REPLY_S
            and all(req.forwarded_at >= self._last_reply_at for req in self._in_flight)
        ):
            # it answered, then closed the connection at once: learn it (also when the next message
            # was already written on the closing connection; that one is failed below, the rest are not)
            self.fresh_per_message = True
        self._replies_on_connection = 0
        unanswered, self._in_flight = self._in_flight, []
        retry: list[_Request] = []
        resend = self.settings.resend_on_stale_connection
        for req in unanswered:
            actions.append(CancelTimer(("ack", req.seq)))
            if resend and req.on_reused and not req.retried and req.extra == 0 and not self.closed_by_proxy:
                req.retried = True
                req.note("the upstream closed a reused connection without answering; resent on a new one "
                         "(resend_on_stale_connection: the upstream may have it twice)")
                retry.append(req)
            else:
                self._upstream_down(
                    req, f"upstream closed the connection before answering ({reason})", actions
                )
        for req in reversed(retry):
            self._queue.appendleft(req)
            self._queued_bytes += len(req.payload)
        open_, self._open = self._open, []
        for req in open_:
            actions.append(CancelTimer(("ack", req.seq)))
            waited = "the application ACK" if req.ack.accept_code else "a conditional ACK (ER/SU)"
            error = f"upstream closed the connection while {waited} was still owed ({reason})"
            if req.ack.waiting() == "required":
                self._upstream_down(req, error, actions)
            else:
                actions.append(self._capture(req, None, "upstream_down", error=error))
        for req in self._duplicates:
            actions.append(CancelTimer(("dup", req.seq)))
            for _ in range(req.extra):
                actions.append(self._capture_copy(req, None, "upstream closed before answering the copy"))
        self._duplicates = []
        if self._lingering:
            self._lingering = False
            actions.append(CancelTimer(("linger",)))
        self._pump(actions)
        self._maybe_finish(actions)
        return actions

    def shutdown(self) -> list:
        """The proxy is stopping: what is still owed a reply or waiting to go is captured as it stands."""
        actions: list = []
        now = self.clock()
        for req in self._outstanding():
            actions.append(CancelTimer(("ack", req.seq)))
            what = "the application ACK" if req.ack.accept_code else "a reply"
            error = f"the proxy stopped before {what} came from the upstream"
            actions.append(self._capture(req, None, "error", now=now, error=error))
        self._in_flight, self._open = [], []
        while self._queue:
            req = self._queue.popleft()
            error = "not forwarded: the proxy stopped"
            actions.append(self._capture(req, None, "error", now=now, error=error))
        self._queued_bytes = 0
        return actions

    # -- timers ----------------------------------------------------------------------------------

    def timer(self, key: tuple) -> list:
        actions: list = []
        kind = key[0]
        if kind == "ack":
            self._on_wait_over(key[1], actions)
        elif kind == "dup":
            self._on_copies_timeout(key[1], actions)
        elif kind == "delay":
            for req in self._queue:
                if req.seq == key[1]:
                    req.ready = True
                    break
            self._pump(actions)
        elif kind == "hold":
            held = self._held.pop(key[1], None)
            if held and self._sender_connected:
                actions.extend(held)
        elif kind == "linger":
            self._lingering = False  # _maybe_finish closes the upstream now
        elif kind == "frame":
            self._on_frame_timeout(actions)
        elif kind == "idle":
            self._on_idle(actions)
        self._maybe_finish(actions)
        return actions

    def _on_frame_timeout(self, actions: list) -> None:
        """A frame started and never ended: give it up, keep its first bytes, close the connection (the
        stream's framing cannot be trusted after it)."""
        if self.sender_reads_paused and self._sender_decoder.in_frame and self.sender_open:
            actions.append(StartTimer(("frame",), self.settings.frame_timeout_s))
            return
        self._frame_timer = False
        if not self._sender_decoder.in_frame or not self.sender_open:
            return
        note = f"no end block within frame_timeout_s ({self.settings.frame_timeout_s:g} s)"
        self._frame_notes.append(note)
        self._sender_events(self._sender_decoder.close(), actions)
        self._frame_notes.clear()
        self._closing()
        actions.append(CloseSender())

    def _on_idle(self, actions: list) -> None:
        if not self.sender_open:
            return
        if self._queue or self._in_flight or self._open or self._held or self._sender_decoder.in_frame:
            actions.append(StartTimer(("idle",), self.settings.idle_timeout_s))
            return
        self._closing()
        actions.append(CloseSender())

    # -- requests --------------------------------------------------------------------------------

    def _on_frame(self, payload: bytes, actions: list) -> None:
        now = self.clock()
        meta = extract(payload, self.settings.charset)
        self._seq += 1
        req = _Request(self._seq, payload, meta, now)
        if self._frame_notes:
            req.notes, self._frame_notes = self._frame_notes, []
        if not self.sender_open:
            error = "not forwarded: arrived after the proxy decided to close the connection"
            actions.append(self._capture(req, None, "error", error=error))
            return
        if self.store_ok is not None and not self.store_ok():
            self._refuse_unrecordable(req, actions)
            return
        if not payload.startswith(_MESSAGE_STARTS):
            req.malformed = True
            reason = meta.problems[0] if meta.problems else "no MSH segment at start of message"
            if self.settings.on_malformed == "refuse":
                from harness.hl7v2.ack import reject_unparseable

                nak = reject_unparseable(payload, reason)
                actions.append(
                    self._capture(req, nak, "malformed", error=reason, then=[ToSender(frame(nak))],
                                  note="refused: not forwarded, answered AR")
                )
                return
            req.note(f"malformed ({reason}); forwarded as received")
        elif meta.accept_ack_type is not None or meta.app_ack_type is not None:
            mode = AckMode.of(meta.accept_ack_type, meta.app_ack_type)
            req.ack = mode.start()
            for problem in mode.problems:
                req.note(problem)
        if self.faults is not None and self.faults.has_rules("request"):
            applied = self.faults.decide("request", payload, meta, self._fault_ctx)
            if applied is not None:
                req.fault = applied
                req.plan = applied.plan
                if not self._apply_request_plan(req, applied.plan, actions):
                    return
        self._queue.append(req)
        self._queued_bytes += len(payload)
        too_much = len(self._queue) >= PAUSE_AT or self._queued_bytes > self.settings.max_pending_bytes
        if too_much and not self._paused:
            self._paused = True
            actions.append(PauseSender())
        self._pump(actions)

    def _refuse_unrecordable(self, req: _Request, actions: list) -> None:
        """A durable channel whose store cannot record: the message is not forwarded, the sender told."""
        error = "not forwarded: the capture store cannot record exchanges now"
        if self.settings.on_store_error == "nak":
            note = "the sender got a reject (on_store_error: nak)"
            nak = self._nak(req, "capture store unavailable; message not forwarded")
            refusal: list = [ToSender(frame(nak))]
        else:
            note = "the sender's connection was closed (on_store_error: close)"
            self._closing()
            refusal = [CloseSender()]
        cap = self._capture(req, None, "error", error=error, note=note)
        cap.optional = True
        actions.append(cap)
        actions.extend(refusal)

    def _apply_request_plan(self, req: _Request, plan: Plan, actions: list) -> bool:
        """Carry out what happens before forwarding; False when the request stops here."""
        if plan.reset_sender and not plan.forward:
            self._closing()
            actions.append(self._capture(req, None, "fault", then=[CloseSender(abort=True)]))
            return False
        if not plan.forward:
            then: list = []
            reply = plan.reply if plan.reply_to_sender else None
            if reply is not None:
                then.append(ToSender(frame(reply), plan.throttle_reply_bps))
            if plan.close_sender:
                self._closing()
                then.append(CloseSender())
            if reply is not None and plan.hold_reply_s > 0:
                then = self._hold(then, plan.hold_reply_s)
            actions.append(self._capture(req, reply, "fault", then=then))
            return False
        if plan.delay_s > 0:
            req.ready = False
            actions.append(StartTimer(("delay", req.seq), plan.delay_s))
        return True

    def _pump(self, actions: list) -> None:
        """Forward queued requests while the upstream has room; open it when needed."""
        if self.closed_by_proxy:
            return  # the sender got no ACK for what is queued and will resend it
        limit = self.settings.max_in_flight
        while self._queue and len(self._in_flight) < limit:
            req = self._queue[0]
            if not req.ready:
                break
            if self.upstream_state != "up":
                if self.upstream_state == "down":
                    self.upstream_state = "connecting"
                    actions.append(Connect())
                break
            idle = not self._in_flight and not self._open and not self._duplicates
            if self.fresh_per_message and self._replies_on_connection and idle:
                self.upstream_state = "connecting"
                actions.append(ReplaceUpstream())
                break
            self._queue.popleft()
            self._queued_bytes -= len(req.payload)
            self._forward(req, actions)
        if (
            self._paused
            and len(self._queue) <= PAUSE_AT // 10
            and self._queued_bytes <= self.settings.max_pending_bytes // 2
        ):
            self._paused = False
            actions.append(ResumeSender())

    def _forward(self, req: _Request, actions: list) -> None:
        plan = req.plan
        req.forwarded_at = self.clock()
        req.conn = self._conn
        req.on_reused = self._replies_on_connection > 0
        if plan is None:
            actions.append(ToUpstream(frame(req.payload)))
        else:
            if plan.forward_raw is not None:
                data = plan.forward_raw
            elif plan.forward_payload is not None:
                data = frame(plan.forward_payload)
            else:
                data = frame(req.payload)
            for _ in range(plan.forward_count):
                actions.append(ToUpstream(data, plan.throttle_request_bps))
            if plan.forward_count > 1:
                req.extra = (plan.forward_count - 1) * _replies_per_copy(req.ack.mode)
                self._duplicates.append(req)
                actions.append(StartTimer(("dup", req.seq), self.settings.ack_timeout_s))
            if plan.close_sender == "after_forward" and self.sender_open:
                self._closing()
                actions.append(CloseSender())
        waiting = req.ack.waiting()
        if waiting == "required":
            self._in_flight.append(req)
            actions.append(StartTimer(("ack", req.seq), self.settings.ack_timeout_s))
        elif waiting == "conditional":
            self._open.append(req)
            actions.append(StartTimer(("ack", req.seq), self.settings.conditional_wait))
        else:
            self._remember_unanswered(req, req.forwarded_at)
            actions.append(
                self._capture(
                    req, None, "no_ack_expected",
                    note="MSH-15/16 NE/NE: the message asks for no acknowledgement; forwarded",
                )
            )

    # -- replies ---------------------------------------------------------------------------------

    def _on_reply(self, payload: bytes, actions: list) -> None:
        now = self.clock()
        meta = reply_meta(payload, self.settings.charset)
        code = meta.ack_code
        key = meta.ack_control_id or ""
        self._replies_on_connection += 1
        self._last_reply_at = now
        if key:
            candidates = [req for req in self._outstanding() if req.key == key and req.ack.accepts(code)]
            ghost = self._ghost(key, now)
            if not candidates:
                if self._copy_reply(key, payload, meta, now, actions):
                    return
                self._late_reply(payload, meta, key, ghost, now, actions)
                return
            if ghost is not None or len(candidates) > 1:
                owners = [f"#{req.seq}" for req in candidates]
                if ghost is not None:
                    why = (f"message #{ghost.seq}, which ended unanswered, or message {owners[0]}, still "
                           "waiting, with the same control id")
                else:
                    why = f"any of messages {', '.join(owners)}, all waiting with the same control id"
                actions.append(
                    self._stray(
                        payload, meta, now, "ambiguous_ack", key,
                        f"reply with MSA-2 {key!r} could answer {why}; not relayed",
                    )
                )
                return
            owner = candidates[0]
        else:
            candidates = [req for req in self._outstanding() if req.ack.accepts(code)]
            ghosts = [g for g in self._ended if self._fresh(g, now)]
            if len(candidates) == 1 and len(self._outstanding()) == 1 and not ghosts:
                owner = candidates[0]
                owner.note("the reply has no MSA-2; it is the reply of the only request outstanding")
            elif not self._outstanding():
                self._late_reply(payload, meta, key, ghosts[0] if len(ghosts) == 1 else None, now, actions)
                return
            else:
                self._unattributable(payload, meta, now, ghosts, actions)
                return
        self._attribute(owner, payload, meta, now, actions)

    def _outstanding(self) -> list[_Request]:
        """Requests still owed a reply, in the order they were forwarded."""
        if not self._open:
            return self._in_flight
        return sorted((*self._in_flight, *self._open), key=lambda req: req.seq)

    def _fresh(self, req: _Request, now: float) -> bool:
        return req.conn == self._conn and now - req.ended_at <= self.settings.late_window

    def _ghost(self, key: str, now: float) -> _Request | None:
        """The oldest request with this control id that ended unanswered and could still own a reply."""
        for req in self._ended:
            if req.key == key and self._fresh(req, now):
                return req
        return None

    def _remember_unanswered(self, req: _Request, now: float) -> None:
        """Keep a request that ended before its last reply came: a reply that comes later is its."""
        req.ended_at = now
        self._ended.append(req)

    def _attribute(self, req: _Request, reply: bytes, meta: Meta, now: float, actions: list) -> None:
        """A reply that belongs to `req`: record it, relay it, and see what the request still awaits."""
        kind = reply_kind(meta.ack_code)
        req.answered = _is_last(meta.ack_code)
        was_waiting = req.ack.waiting()
        complete = req.ack.take(meta.ack_code)
        if req in self._in_flight:
            self._in_flight.remove(req)
        elif req in self._open:
            self._open.remove(req)
        if complete:
            actions.append(CancelTimer(("ack", req.seq)))
            if not req.answered:  # ended on a CA: an application ACK may still come, wanted or not
                self._remember_unanswered(req, now)
            then, note = self._reply_actions(req, reply, meta, kind)
            actions.append(self._capture(req, reply, None, reply_meta=meta, now=now, then=then, note=note))
        elif kind == "accept" and req.accept_reply is None:
            req.accept_reply, req.accept_at = reply, now
            then, note = self._reply_actions(req, reply, meta, kind)
            cap = self._capture(req, None, "pending", now=now, then=then, note=note)
            req.row = cap.exchange
            actions.append(cap)
            self._open.append(req)
            waiting = req.ack.waiting()
            seconds = self.settings.app_timeout if waiting == "required" else self.settings.conditional_wait
            actions.append(StartTimer(("ack", req.seq), seconds))
        else:
            # a reply that does not move the exchange on (a second CA): relayed, noted, still waiting
            then, note = self._reply_actions(req, reply, meta, kind)
            req.note(note or f"a further reply {meta.ack_code} was relayed")
            self._then_now(then, actions)
            if was_waiting == "required" and req.ack.awaiting_first:
                self._in_flight.append(req)
            else:
                self._open.append(req)
        self._pump(actions)

    def _reply_actions(self, req: _Request, reply: bytes, meta: Meta, kind: str) -> tuple[list, str | None]:
        """What the sender gets for one reply, after the request's fault plan and any response rule."""
        plan = req.plan
        if self.faults is not None and self.faults.has_rules("response"):
            ctx = FaultContext(
                channel=self.settings.channel,
                ack_timeout_s=self.settings.ack_timeout_s,
                charset=self.settings.charset,
                request=req.payload,
                request_meta=req.meta,
                reply=kind,
            )
            base = dataclasses.replace(plan, notes=list(plan.notes)) if plan is not None else None
            applied = self.faults.decide("response", reply, meta, ctx, plan=base)
            if applied is not None:
                plan = applied.plan
                if req.response_faults is None:
                    req.response_faults = []
                req.response_faults.append((applied, kind))
        if plan is None:
            if not self.sender_open:
                return [], f"{_REPLY_NAMES[kind]} not relayed: the sender's connection was already closed"
            return [ToSender(frame(reply))], None
        then: list = []
        sent = reply
        altered = plan.forward_payload is not None or plan.forward_raw is not None
        if plan.reply is not None:
            sent, altered = plan.reply, True
        if plan.reply_transform is not None:
            sent, altered = plan.reply_transform(sent), True
        data = frame(sent)
        if plan.reply_raw_transform is not None:
            data, altered = plan.reply_raw_transform(data), True
        if plan.reset_sender or not plan.reply_to_sender or plan.close_sender == "mid_frame":
            altered = True
        req.altered = req.altered or altered
        if not self.sender_open:
            return [], f"{_REPLY_NAMES[kind]} not relayed: the sender's connection was already closed"
        if plan.reset_sender:
            self._closing()
            then.append(CloseSender(abort=True))
        elif not plan.reply_to_sender:
            if plan.close_sender:
                self._closing()
                then.append(CloseSender())
        elif plan.close_sender == "mid_frame":
            self._closing()
            then += [ToSender(data[: max(1, len(data) // 2)], plan.throttle_reply_bps), CloseSender()]
        else:
            then.append(ToSender(data, plan.throttle_reply_bps))
            if plan.close_sender:
                self._closing()
                then.append(CloseSender())
        if then and plan.hold_reply_s > 0:
            then = self._hold(then, plan.hold_reply_s)
        return then, None

    def _hold(self, then: list, seconds: float) -> list:
        self._hold_seq += 1
        self._held[self._hold_seq] = then
        return [StartTimer(("hold", self._hold_seq), seconds)]

    @staticmethod
    def _then_now(then: list, actions: list) -> None:
        """Sender-bound actions that need no capture of their own (the shell still keeps their order)."""
        actions.extend(then)

    def _copy_reply(self, key: str, payload: bytes, meta: Meta, now: float, actions: list) -> bool:
        for req in self._duplicates:
            if req.key == key:
                req.extra -= 1
                if req.extra <= 0:
                    self._duplicates.remove(req)
                    actions.append(CancelTimer(("dup", req.seq)))
                actions.append(self._capture_copy(req, payload, None, reply_meta=meta, now=now))
                return True
        return False

    def _late_reply(
        self, reply: bytes, meta: Meta, key: str, ghost: _Request | None, now: float, actions: list
    ) -> None:
        if ghost is not None:
            if _is_last(meta.ack_code):
                self._ended.remove(ghost)  # no further reply can be its: its control id is free again
            waited = (now - ghost.ended_at) * 1000.0
            if ghost.ack.mode.expects_nothing:
                why = "the message asked for no ACK (MSH-15/16 NE/NE)"
            elif ghost.ack.silent is not None:
                why = f"after the {self.settings.conditional_wait:g} s wait for a conditional ACK ended"
            else:
                limit = self.settings.app_timeout if ghost.ack.accept_code else self.settings.ack_timeout_s
                why = f"after the {limit:g} s ACK timeout"
            actions.append(
                self._capture(
                    ghost, reply, "late_ack", reply_meta=meta, now=now, late=True,
                    note=f"reply arrived {waited:.0f} ms {why}; not relayed to the sender",
                )
            )
            return
        where = f"with MSA-2 {key!r}" if key else "without MSA-2"
        actions.append(
            self._stray(
                reply, meta, now, "late_ack", meta.ack_control_id,
                f"reply {where} matches no outstanding request on this connection; not relayed to the sender",
            )
        )

    def _unattributable(
        self, reply: bytes, meta: Meta, now: float, ghosts: list[_Request], actions: list
    ) -> None:
        """A reply without MSA-2 that more than one request could own: never relayed."""
        owners = self._outstanding()
        ids = ", ".join(repr(r.key) for r in (*ghosts, *owners))
        actions.append(
            self._stray(
                reply, meta, now, "ambiguous_ack", None,
                f"reply without MSA-2 while {len(owners) + len(ghosts)} requests could own it ({ids}); "
                "not relayed",
            )
        )
        policy = self.settings.on_ack_timeout
        if policy == "wait":
            return
        error = "the upstream sent a reply without MSA-2 that cannot be attributed to one request"
        self._in_flight, self._open = [], []
        for req in owners:
            actions.append(CancelTimer(("ack", req.seq)))
            self._remember_unanswered(req, now)
            then: list = []
            note = None
            if self.sender_open and policy == "close":
                self._closing()
                then.append(CloseSender())
                note = "the sender's connection was closed (on_ack_timeout: close)"
            elif self.sender_open and policy == "nak":
                then.append(ToSender(frame(self._nak(req, "upstream reply could not be attributed"))))
                note = "the sender got a reject from the proxy (on_ack_timeout: nak)"
            actions.append(
                self._capture(req, None, "ambiguous_ack", error=error, now=now, then=then, note=note)
            )
        self._pump(actions)

    def _on_wait_over(self, seq: int, actions: list) -> None:
        """The wait for a request's reply ended: a timeout, or the meaning of a conditional silence.

        Not while the upstream's replies are left unread because the sender is not reading its own: the
        reply may be waiting in the socket, and the upstream is not to blame. The wait starts again."""
        if self.replies_held:
            for req in (*self._in_flight, *self._open):
                if req.seq == seq:
                    conditional = req.ack.waiting() == "conditional"
                    settings = self.settings
                    again = settings.conditional_wait if conditional else settings.ack_timeout_s
                    actions.append(StartTimer(("ack", seq), again))
            return
        for pool in (self._in_flight, self._open):
            for req in pool:
                if req.seq == seq:
                    pool.remove(req)
                    break
            else:
                continue
            break
        else:
            return
        now = self.clock()
        self._remember_unanswered(req, now)
        if req.ack.waiting() == "conditional":
            verdict = req.ack.silence()
            actions.append(self._capture(req, None, verdict, now=now))
            self._pump(actions)
            return
        application = req.ack.accept_code is not None
        timeout = self.settings.app_timeout if application else self.settings.ack_timeout_s
        what = "application ACK after the CA" if application else "reply from the upstream"
        error = f"no {what} within {timeout:g} s"
        then: list = []
        if self.sender_open:
            policy = self.settings.on_ack_timeout
            if policy == "close":
                self._closing()
                then.append(CloseSender())
            elif policy == "nak":
                missing = "send the application ACK" if application else "answer"
                text = f"upstream did not {missing} within {timeout:g} s"
                then.append(ToSender(frame(self._nak(req, text))))
        note = None
        if self.settings.on_ack_timeout == "nak" and then:
            note = "the sender got a reject from the proxy (on_ack_timeout: nak)"
        actions.append(self._capture(req, None, "timeout", error=error, now=now, then=then, note=note))
        self._pump(actions)

    def _on_copies_timeout(self, seq: int, actions: list) -> None:
        for req in self._duplicates:
            if req.seq == seq:
                self._duplicates.remove(req)
                for _ in range(req.extra):
                    actions.append(self._capture_copy(req, None, "no reply to the copy in time"))
                return

    # -- failures --------------------------------------------------------------------------------

    def _upstream_down(self, req: _Request, error: str, actions: list) -> None:
        then: list = []
        note = None
        if self.sender_open:
            if self.settings.on_upstream_down == "nak":
                nak = self._nak(req, "upstream unavailable")
                then.append(ToSender(frame(nak)))
                note = "the sender got a reject from the proxy (on_upstream_down: nak)"
            elif not self.closed_by_proxy:
                self._closing()
                then.append(CloseSender())
                note = "the sender's connection was closed (on_upstream_down: close)"
        actions.append(self._capture(req, None, "upstream_down", error=error, then=then, note=note))

    def _nak(self, req: _Request, text: str) -> bytes:
        """The proxy's own reject, never an accept: CR while an accept ACK is awaited, else AR."""
        from harness.hl7v2.ack import build_ack, reject_unparseable

        mode = req.ack.mode
        awaiting_accept = mode.enhanced and mode.accept != "NE" and req.ack.accept_code is None
        code = "CR" if awaiting_accept else "AR"
        if req.malformed:
            return reject_unparseable(req.payload, text)
        try:
            return build_ack(req.payload, code, text=text, charset=self.settings.charset)
        except ValueError:
            return reject_unparseable(req.payload, text)

    def _closing(self) -> None:
        self.sender_open = False
        self.closed_by_proxy = True

    # -- framing problems --------------------------------------------------------------------------

    def _on_sender_problem(self, event: Any, actions: list) -> None:
        if isinstance(event, (MissingStartBlock, EndBlockWithoutCR)):
            self._frame_notes.append(f"framing: {event.describe()}; forwarded as a proper frame")
            return
        if isinstance(event, Junk) and event.whitespace:
            return
        now = self.clock()
        if isinstance(event, Truncated):
            data = event.payload[:TRUNCATED_KEEP]
        else:
            data = getattr(event, "head", b"")
        self._seq += 1
        req = _Request(self._seq, data, Meta(), now)
        req.malformed = True
        if self._frame_notes:
            req.notes, self._frame_notes = list(self._frame_notes), []
        then: list = []
        error = event.describe()
        note = "not forwarded (it would desynchronise the upstream's framing)"
        if isinstance(event, Truncated) and len(event.payload) > TRUNCATED_KEEP:
            note += f"; only its first {TRUNCATED_KEEP} of {len(event.payload)} bytes are kept here"
        if isinstance(event, FrameTooLarge):
            note = f"not forwarded; only the first {len(data)} bytes are kept here"
            if event.complete and self.sender_open:
                from harness.hl7v2.ack import reject_unparseable

                nak = reject_unparseable(data, f"frame larger than {event.limit} bytes")
                then.append(ToSender(frame(nak)))
                note += "; the sender got an AR"
        elif isinstance(event, Junk):
            note = f"{event.size} byte(s) outside any frame, first {len(data)} kept; not forwarded"
        actions.append(self._capture(req, None, "malformed", error=error, then=then, note=note))

    def _on_upstream_problem(self, event: Any, actions: list) -> None:
        if isinstance(event, (MissingStartBlock, EndBlockWithoutCR)):
            return  # the reply still arrives as a frame; the relay re-frames it properly
        if isinstance(event, Junk) and event.whitespace:
            return
        now = self.clock()
        data = event.payload if isinstance(event, Truncated) else getattr(event, "head", b"")
        actions.append(
            self._stray(data, Meta(), now, "error", None, "not relayed to the sender",
                        error=f"from the upstream: {event.describe()}")
        )

    # -- capture -------------------------------------------------------------------------------

    def _stray(
        self, reply: bytes, meta: Meta, now: float, outcome: str, control_id: str | None, note: str,
        *, error: str | None = None,
    ) -> Capture:
        """A reply that belongs to no request: its own exchange with an empty request."""
        stray = _Request(0, b"", Meta(), now)
        return self._capture(
            stray, reply, outcome, reply_meta=meta, now=now, control_id=control_id, note=note, error=error,
            late=True,
        )

    def _capture(
        self,
        req: _Request,
        response: bytes | None,
        outcome: str | None,
        *,
        reply_meta: Meta | None = None,
        now: float | None = None,
        error: str | None = None,
        then: list | None = None,
        note: str | None = None,
        control_id: str | None = None,
        late: bool = False,
    ) -> Capture:
        """The exchange of `req` as it stands. `outcome` None: what its replies add up to.

        `late`: a row of its own for a reply that came after its request's exchange ended.
        """
        meta = req.meta
        ended = self.clock() if now is None else now
        if outcome is None:
            outcome = req.ack.verdict()
            if req.malformed:
                outcome = "malformed"
            elif req.altered:
                outcome = "fault"
        fault = None
        records = [applied.record() | {"reply": kind} for applied, kind in req.response_faults or ()]
        if req.fault is not None:
            fault = req.fault.record()
            if records:
                fault["also"] = records
        elif records:
            fault = records[0]
            if len(records) > 1:
                fault["also"] = records[1:]
        notes = list(req.notes) if req.notes else []
        if not late:
            notes += [n for n in req.ack.notes if n not in notes]
        if note:
            notes.append(note)
        ex_meta = _exchange_meta(meta)
        if reply_meta is not None and reply_meta.problems:
            ex_meta["response_problems"] = list(reply_meta.problems)
        accept_reply = None if late else req.accept_reply
        if accept_reply is not None:
            ex_meta["accept_latency_ms"] = round(max(0.0, (req.accept_at - req.received_at) * 1000.0), 3)
        ex = Exchange(
            channel=self.settings.channel,
            protocol="mllp",
            kind="hl7v2",
            started_at=req.received_at,
            ended_at=ended,
            latency_ms=max(0.0, (ended - req.received_at) * 1000.0),
            client_addr=self.client_addr,
            upstream_addr=self.upstream_addr if req.forwarded_at or late else None,
            request=req.payload,
            response=response,
            outcome=outcome,
            ack_code=reply_meta.ack_code if reply_meta is not None else _ack_code_of(response),
            accept_ack_code=None if accept_reply is None else req.ack.accept_code,
            accept_response=accept_reply,
            message_type=meta.message_code,
            control_id=meta.control_id if control_id is None else control_id,
            charset=meta.charset,
            fault=fault,
            meta=ex_meta,
            error=error,
            notes=notes,
        )
        replaces = None if late else req.row
        if not late and outcome != "pending":
            req.row = None
        return Capture(ex, then or [], replaces)

    def _capture_copy(
        self, req: _Request, reply: bytes | None, error: str | None, *, reply_meta: Meta | None = None,
        now: float | None = None,
    ) -> Capture:
        """The reply to an extra copy forwarded by a duplicate fault: captured, never relayed."""
        return self._capture(
            req, reply, "fault", reply_meta=reply_meta, now=now, error=error, late=True,
            note="extra copy forwarded by a duplicate fault; its reply is not relayed",
        )

    def _maybe_finish(self, actions: list) -> None:
        if self.finished or self.sender_open:
            return
        if self._queue or self._in_flight or self._open or self._duplicates or self._held:
            return
        if self.upstream_state == "connecting":
            return
        if self.upstream_state == "up":
            now = self.clock()
            recent = any(
                req.conn == self._conn and now - req.ended_at < self.settings.ack_timeout_s
                and not req.ack.mode.expects_nothing
                for req in self._ended
            )
            if recent and not self._lingering:
                # keep listening for a while so a late ACK is still captured
                self._lingering = True
                actions.append(StartTimer(("linger",), self.settings.ack_timeout_s))
                return
            if self._lingering:
                return
            actions.append(CloseUpstream())
            self.upstream_state = "closing"
            return
        self.finished = True


_REPLY_NAMES = {"accept": "accept ACK", "application": "ACK", "bad": "reply"}


def _is_last(code: str | None) -> bool:
    """Whether a reply with this MSA-1 is always a message's last: all but a CA."""
    return code != "CA"


def _replies_per_copy(mode: AckMode) -> int:
    """How many replies a duplicate copy is expected to draw when everything succeeds."""
    if not mode.enhanced:
        return 1
    return sum(1 for condition in (mode.accept, mode.application) if condition in ("AL", "SU"))


def reply_meta(payload: bytes, charset: str | None = None) -> Meta:
    """What matching a reply needs (MSA-1, MSA-2), read straight from the bytes when that is safe.

    A plain ACK (MSH with the usual delimiters, an all-ASCII MSA line without escapes) is read with
    two splits; anything else goes through `harness.hl7v2.meta.extract`, which decodes first.
    """
    if payload[:3] == b"MSH" and len(payload) > 8:
        fsep = payload[3:4]
        comp = payload[4:5]
        rep = payload[5:6]
        esc = payload[6:7]
        pos = payload.find(b"\rMSA" + fsep)
        if pos > 0 and fsep not in (comp, esc, b"\r"):
            end = payload.find(b"\r", pos + 1)
            line = payload[pos + 1 : end if end > 0 else len(payload)]
            if line.isascii() and esc not in line and rep not in line:
                fields = line.split(fsep)
                code = fields[1].split(comp, 1)[0] if len(fields) > 1 else b""
                cid = fields[2].split(comp, 1)[0] if len(fields) > 2 else b""
                return make_meta(
                    ack_code=code.decode("ascii") or None,
                    ack_control_id=cid.decode("ascii") or None,
                    charset=charset,
                )
    return extract(payload, charset)


def _ack_code_of(response: bytes | None) -> str | None:
    if not response:
        return None
    return extract(response).ack_code
