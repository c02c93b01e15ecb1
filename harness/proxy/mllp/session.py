"""One sender connection through the MLLP proxy, as a sans-IO state machine.

The Twisted shell (`harness.proxy.mllp.channel`) feeds it — bytes from the sender, bytes from the upstream,
connections opened, failed and closed, timers fired — and carries out the actions it returns. Every
decision lives here, testable without sockets:

- Requests are forwarded as MLLP frames around the exact payload bytes received; at most
  `max_in_flight` are outstanding at the upstream, the rest wait in order (senders that pipeline
  are served; upstreams that take one message at a time are not overrun).
- Replies are matched to outstanding requests by MSA-2 (oldest first among equal ids). A reply that
  matches nothing outstanding — e.g. one arriving after its request timed out — is captured as
  `late_ack` and never relayed: it could be taken for the ACK of the sender's next message.
- The upstream connection is opened lazily (the shell tries the upstream and its backups in order)
  and reopened for the next message when the upstream closed after a reply. A request that was
  written on a reused connection which then closed without answering is resent once on a fresh
  connection: a peer that closes after each reply (hl7apy's MLLPServer) may close before it reads
  a message the proxy already wrote (the stale keep-alive case HTTP clients retry too).
- The proxy never answers AA on the upstream's behalf. Upstream down or silent: the sender's
  connection is closed or it gets an AR/CR, per channel setting; the capture says which.
- Every exchange is handed to the capture as a `Capture` action whose `then` actions (the reply to
  the sender, a close) the shell runs only once the capture allows it (durable: after the commit).
  Actions bound for the sender keep their order across captures.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.exchange import Exchange
from harness.hl7v2.meta import Meta, extract
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
_ACCEPTED = ("AA", "CA")
_NAK_CODES = ("AE", "AR", "CE", "CR")
_MESSAGE_STARTS = (b"MSH", b"FHS", b"BHS", b"\xef\xbb\xbfMSH")
LATE_MEMORY = 256
"""How many timed-out requests per connection are remembered to tie a late ACK to its request."""
PAUSE_AT = 1000
"""Queued requests at which the sender is no longer read from (resumed at a tenth of it)."""


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
    """Record `exchange`; then run `then` (bound for the sender) once the capture mode allows it."""

    exchange: Exchange
    then: list = field(default_factory=list)


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
        )


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
        "received_at",
        "forwarded_at",
        "plan",
        "fault",
        "ready",
        "on_reused",
        "retried",
        "extra",
        "notes",
        "malformed",
        "timed_out_at",
    )

    def __init__(self, seq: int, payload: bytes, meta: Meta, received_at: float) -> None:
        self.seq = seq
        self.payload = payload
        self.meta = meta
        self.key = meta.control_id or ""
        self.received_at = received_at
        self.forwarded_at = 0.0
        self.plan: Plan | None = None
        self.fault: Any = None
        self.ready = True
        self.on_reused = False
        self.retried = False
        self.extra = 0
        """Duplicate copies forwarded whose replies are still expected."""
        self.notes: list[str] | None = None
        self.malformed = False
        self.timed_out_at = 0.0

    def note(self, text: str) -> None:
        if self.notes is None:
            self.notes = []
        self.notes.append(text)


def _exchange_meta(meta: Meta) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("structure", "version", "processing_id", "sending_app", "sending_facility",
                 "receiving_app", "receiving_facility"):
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
    ) -> None:
        self.settings = settings
        self.client_addr = client_addr
        self.faults = faults
        """The channel's `harness.proxy.faults.engine.FaultEngine`, or None."""
        self.clock = clock
        self._sender_decoder = MLLPDecoder(settings.max_frame_bytes)
        self._upstream_decoder = MLLPDecoder(settings.max_frame_bytes)
        self._fault_ctx = FaultContext(
            channel=settings.channel, ack_timeout_s=settings.ack_timeout_s, charset=settings.charset
        )
        self._seq = 0
        self._queue: deque[_Request] = deque()
        self._in_flight: list[_Request] = []
        self._duplicates: list[_Request] = []
        self._timed_out: deque[_Request] = deque(maxlen=LATE_MEMORY)
        self._held: dict[int, list] = {}
        self._frame_notes: list[str] = []
        self.upstream_state = "down"  # down | connecting | up
        self.upstream_addr: str | None = None
        self._replies_on_connection = 0
        self.sender_open = True
        """False once the sender closed or the proxy decided to close it."""
        self.closed_by_proxy = False
        self._sender_connected = True
        self._paused = False
        self._lingering = False
        self.finished = False
        """True once nothing is left to do (the shell may drop the session)."""

    def awaiting_replies(self, forwarded_since: float = 0.0) -> int:
        """Requests forwarded (at or after `forwarded_since`, session clock) whose reply has not come."""
        return sum(1 for req in list(self._in_flight) if req.forwarded_at >= forwarded_since)

    # -- events from the sender ------------------------------------------------------------------

    def sender_data(self, data: bytes) -> list:
        actions: list = []
        for event in self._sender_decoder.feed(data):
            if event.__class__ is Frame:
                self._on_frame(event.payload, actions)
            else:
                self._on_sender_problem(event, actions)
        return actions

    def sender_closed(self) -> list:
        actions: list = []
        for event in self._sender_decoder.close():
            self._on_sender_problem(event, actions)
        self.sender_open = False
        self._sender_connected = False
        for seq in list(self._held):
            actions.append(CancelTimer(("hold", seq)))
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
        for req in failed:
            self._upstream_down(req, f"upstream unavailable: {error}", actions)
        self._maybe_finish(actions)
        return actions

    def upstream_data(self, data: bytes) -> list:
        actions: list = []
        for event in self._upstream_decoder.feed(data):
            if event.__class__ is Frame:
                self._on_reply(event.payload, actions)
            else:
                self._on_upstream_problem(event, actions)
        self._maybe_finish(actions)
        return actions

    def upstream_closed(self, reason: str = "connection closed") -> list:
        actions: list = []
        for event in self._upstream_decoder.close():
            self._on_upstream_problem(event, actions)
        self.upstream_state = "down"
        self._replies_on_connection = 0
        unanswered, self._in_flight = self._in_flight, []
        retry: list[_Request] = []
        for req in unanswered:
            actions.append(CancelTimer(("ack", req.seq)))
            if req.on_reused and not req.retried and req.extra == 0 and not self.closed_by_proxy:
                req.retried = True
                req.note("the upstream closed a reused connection without answering; resent on a new one")
                retry.append(req)
            else:
                self._upstream_down(
                    req, f"upstream closed the connection before answering ({reason})", actions
                )
        for req in reversed(retry):
            self._queue.appendleft(req)
        for req in self._duplicates:
            actions.append(CancelTimer(("ack", req.seq)))
            for _ in range(req.extra):
                actions.append(self._capture_copy(req, None, "upstream closed before answering the copy"))
        self._duplicates = []
        if self._lingering:
            self._lingering = False
            actions.append(CancelTimer(("linger",)))
        self._pump(actions)
        self._maybe_finish(actions)
        return actions

    # -- timers ----------------------------------------------------------------------------------

    def timer(self, key: tuple) -> list:
        actions: list = []
        kind = key[0]
        if kind == "ack":
            self._on_ack_timeout(key[1], actions)
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
        self._maybe_finish(actions)
        return actions

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
        if self.faults is not None and self.faults.has_rules("request"):
            applied = self.faults.decide("request", payload, meta, self._fault_ctx)
            if applied is not None:
                req.fault = applied
                req.plan = applied.plan
                if not self._apply_request_plan(req, applied.plan, actions):
                    return
        self._queue.append(req)
        if len(self._queue) >= PAUSE_AT and not self._paused:
            self._paused = True
            actions.append(PauseSender())
        self._pump(actions)

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
                self._held[req.seq] = then
                then = [StartTimer(("hold", req.seq), plan.hold_reply_s)]
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
            self._queue.popleft()
            self._forward(req, actions)
        if self._paused and len(self._queue) <= PAUSE_AT // 10:
            self._paused = False
            actions.append(ResumeSender())

    def _forward(self, req: _Request, actions: list) -> None:
        plan = req.plan
        req.forwarded_at = self.clock()
        req.on_reused = self._replies_on_connection > 0
        self._in_flight.append(req)
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
            req.extra = plan.forward_count - 1
            if plan.close_sender == "after_forward" and self.sender_open:
                self._closing()
                actions.append(CloseSender())
        actions.append(StartTimer(("ack", req.seq), self.settings.ack_timeout_s))

    # -- replies ---------------------------------------------------------------------------------

    def _on_reply(self, payload: bytes, actions: list) -> None:
        now = self.clock()
        meta = reply_meta(payload, self.settings.charset)
        key = meta.ack_control_id or ""
        self._replies_on_connection += 1
        for i, req in enumerate(self._in_flight):
            if req.key == key:
                del self._in_flight[i]
                break
        else:
            for i, req in enumerate(self._duplicates):
                if req.key == key:
                    req.extra -= 1
                    if req.extra == 0:
                        del self._duplicates[i]
                        actions.append(CancelTimer(("ack", req.seq)))
                    actions.append(self._capture_copy(req, payload, None, reply_meta=meta, now=now))
                    return
            self._late_reply(payload, meta, key, now, actions)
            return
        if req.extra:
            self._duplicates.append(req)
        else:
            actions.append(CancelTimer(("ack", req.seq)))
        self._answered(req, payload, meta, now, actions)
        self._pump(actions)

    def _answered(self, req: _Request, reply: bytes, meta: Meta, now: float, actions: list) -> None:
        plan = req.plan
        response_fault = None
        if self.faults is not None and self.faults.has_rules("response"):
            ctx = FaultContext(
                channel=self.settings.channel,
                ack_timeout_s=self.settings.ack_timeout_s,
                charset=self.settings.charset,
                request=req.payload,
                request_meta=req.meta,
            )
            response_fault = self.faults.decide("response", reply, meta, ctx, plan=plan)
            if response_fault is not None:
                plan = response_fault.plan
        outcome = "nak" if meta.ack_code in _NAK_CODES else "ok"
        if req.malformed:
            outcome = "malformed"
        deliverable = self.sender_open
        if plan is None:
            then = [ToSender(frame(reply))] if deliverable else []
            note = None if deliverable else "not relayed: the sender's connection was already closed"
            actions.append(self._capture(req, reply, outcome, reply_meta=meta, now=now, then=then, note=note))
            return
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
        note = None
        if plan.reset_sender or not plan.reply_to_sender or plan.close_sender == "mid_frame":
            altered = True
        if not deliverable:
            note = "not relayed: the sender's connection was already closed"
        elif plan.reset_sender:
            self._closing()
            then.append(CloseSender(abort=True))
            altered = True
        elif not plan.reply_to_sender:
            altered = True
            if plan.close_sender:
                self._closing()
                then.append(CloseSender())
        elif plan.close_sender == "mid_frame":
            self._closing()
            then += [ToSender(data[: max(1, len(data) // 2)], plan.throttle_reply_bps), CloseSender()]
            altered = True
        else:
            then.append(ToSender(data, plan.throttle_reply_bps))
            if plan.close_sender:
                self._closing()
                then.append(CloseSender())
        if then and plan.hold_reply_s > 0:
            self._held[req.seq] = then
            then = [StartTimer(("hold", req.seq), plan.hold_reply_s)]
        actions.append(
            self._capture(
                req, reply, "fault" if altered else outcome, reply_meta=meta, now=now, then=then,
                note=note, response_fault=response_fault,
            )
        )

    def _late_reply(self, reply: bytes, meta: Meta, key: str, now: float, actions: list) -> None:
        for req in self._timed_out:
            if req.key == key:
                self._timed_out.remove(req)
                waited = (now - req.timed_out_at) * 1000.0
                actions.append(
                    self._capture(
                        req, reply, "late_ack", reply_meta=meta, now=now,
                        note=f"reply arrived {waited:.0f} ms after the {self.settings.ack_timeout_s:g} s "
                        "ACK timeout; not relayed to the sender",
                    )
                )
                return
        stray = _Request(0, b"", Meta(), now)
        stray.key = key
        actions.append(
            self._capture(
                stray, reply, "late_ack", reply_meta=meta, now=now,
                control_id=meta.ack_control_id,
                note=f"reply with MSA-2 {key!r} matches no outstanding request on this connection; "
                "not relayed to the sender",
            )
        )

    def _on_ack_timeout(self, seq: int, actions: list) -> None:
        for i, req in enumerate(self._in_flight):
            if req.seq == seq:
                del self._in_flight[i]
                break
        else:
            for i, req in enumerate(self._duplicates):
                if req.seq == seq:
                    del self._duplicates[i]
                    for _ in range(req.extra):
                        actions.append(self._capture_copy(req, None, "no reply to the copy in time"))
                    return
            return
        now = self.clock()
        req.timed_out_at = now
        self._timed_out.append(req)
        timeout = self.settings.ack_timeout_s
        error = f"no reply from the upstream within {timeout:g} s"
        then: list = []
        if self.sender_open:
            policy = self.settings.on_ack_timeout
            if policy == "close":
                self._closing()
                then.append(CloseSender())
            elif policy == "nak":
                then.append(ToSender(frame(self._nak(req, f"upstream did not answer within {timeout:g} s"))))
        ex = self._capture(req, None, "timeout", error=error, now=now, then=then)
        if self.settings.on_ack_timeout == "nak" and then:
            ex.exchange.notes.append("the sender got an AR from the proxy (on_ack_timeout: nak)")
        actions.append(ex)
        self._pump(actions)

    # -- failures --------------------------------------------------------------------------------

    def _upstream_down(self, req: _Request, error: str, actions: list) -> None:
        then: list = []
        note = None
        if self.sender_open:
            if self.settings.on_upstream_down == "nak":
                nak = self._nak(req, "upstream unavailable")
                then.append(ToSender(frame(nak)))
                note = "the sender got an AR from the proxy (on_upstream_down: nak)"
            elif not self.closed_by_proxy:
                self._closing()
                then.append(CloseSender())
                note = "the sender's connection was closed (on_upstream_down: close)"
        actions.append(self._capture(req, None, "upstream_down", error=error, then=then, note=note))

    def _nak(self, req: _Request, text: str) -> bytes:
        """The proxy's own NAK: AR (CR in enhanced mode), never an accept."""
        from harness.hl7v2.ack import build_ack, reject_unparseable

        meta = req.meta
        code = "CR" if (meta.accept_ack_type or meta.app_ack_type) else "AR"
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
            data = event.payload
        else:
            data = getattr(event, "head", b"")
        self._seq += 1
        req = _Request(self._seq, data, Meta(), now)
        req.malformed = True
        then: list = []
        error = event.describe()
        note = "not forwarded (it would desynchronise the upstream's framing)"
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
        stray = _Request(0, b"", Meta(), now)
        actions.append(
            self._capture(
                stray, data, "error", error=f"from the upstream: {event.describe()}",
                note="not relayed to the sender",
            )
        )

    # -- capture -------------------------------------------------------------------------------

    def _capture(
        self,
        req: _Request,
        response: bytes | None,
        outcome: str,
        *,
        reply_meta: Meta | None = None,
        now: float | None = None,
        error: str | None = None,
        then: list | None = None,
        note: str | None = None,
        control_id: str | None = None,
        response_fault: Any = None,
    ) -> Capture:
        meta = req.meta
        ended = self.clock() if now is None else now
        fault = None
        if req.fault is not None:
            fault = req.fault.record()
            if response_fault is not None:
                fault["also"] = [response_fault.record()]
        elif response_fault is not None:
            fault = response_fault.record()
        notes = list(req.notes) if req.notes else []
        if note:
            notes.append(note)
        ex_meta = _exchange_meta(meta)
        if reply_meta is not None and reply_meta.problems:
            ex_meta["response_problems"] = list(reply_meta.problems)
        ex = Exchange(
            channel=self.settings.channel,
            protocol="mllp",
            kind="hl7v2",
            started_at=req.received_at,
            ended_at=ended,
            latency_ms=max(0.0, (ended - req.received_at) * 1000.0),
            client_addr=self.client_addr,
            upstream_addr=self.upstream_addr if req.forwarded_at else None,
            request=req.payload,
            response=response,
            outcome=outcome,
            ack_code=reply_meta.ack_code if reply_meta is not None else _ack_code_of(response),
            message_type=meta.message_code,
            control_id=meta.control_id if control_id is None else control_id,
            charset=meta.charset,
            fault=fault,
            meta=ex_meta,
            error=error,
            notes=notes,
        )
        return Capture(ex, then or [])

    def _capture_copy(
        self, req: _Request, reply: bytes | None, error: str | None, *, reply_meta: Meta | None = None,
        now: float | None = None,
    ) -> Capture:
        """The reply to an extra copy forwarded by a duplicate fault: captured, never relayed."""
        cap = self._capture(
            req, reply, "fault", reply_meta=reply_meta, now=now, error=error,
            note="extra copy forwarded by a duplicate fault; its reply is not relayed",
        )
        return cap

    def _maybe_finish(self, actions: list) -> None:
        if self.finished or self.sender_open:
            return
        if self._queue or self._in_flight or self._duplicates or self._held:
            return
        if self.upstream_state == "connecting":
            return
        if self.upstream_state == "up":
            recent = self._timed_out and (self.clock() - self._timed_out[-1].timed_out_at) < (
                self.settings.ack_timeout_s
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
                return Meta(
                    ack_code=code.decode("ascii") or None,
                    ack_control_id=cid.decode("ascii") or None,
                    charset=charset,
                )
    return extract(payload, charset)


def _ack_code_of(response: bytes | None) -> str | None:
    if not response:
        return None
    return extract(response).ack_code
