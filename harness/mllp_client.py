"""Blocking MLLP client: send a message, wait for what it asks back (MSH-15/16), report each reply.

What a message waits for is `harness.hl7v2.ackmode`: original mode one ACK; enhanced mode the accept
ACK and then, when MSH-16 asks, the application ACK (with its own timeout); NE/NE nothing; ER/SU a
conditional reply for a short wait. A reply is taken as a message's only when its MSA-2 equals the
message's MSH-10 (or it has no MSA-2, noted): a late ACK for an earlier message (an engine catching
up after a timeout) is reported, never mistaken for the current one's (the Mirth bug in peers.md).
Many peers close the connection after each message; the client reconnects transparently and, when
a reused connection turns out to be closed before anything came back, sends the message again on a
fresh one. One client is one connection and is not thread-safe; replay uses one client per worker
thread.
"""

from __future__ import annotations

import select
import socket
import ssl
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from harness.client_tls import TLSOptions
from harness.exchange import SUCCESS_OUTCOMES
from harness.hl7v2.ack import ack_text
from harness.hl7v2.ackmode import AckMode, AckState, reply_kind
from harness.hl7v2.meta import extract
from harness.mllp import DEFAULT_MAX_FRAME, Frame, MLLPDecoder, Problem, encode

ACCEPTED = frozenset({"AA", "CA"})
DEFAULT_CONDITIONAL_WAIT_S = 2.0
"""How long a reply owed only on error or success (MSH-15/16 ER, SU) is awaited before moving on."""
_RECV = 65536
_OUTCOMES = {"connect": "upstream_down", "send": "upstream_down", "closed": "upstream_down",
             "timeout": "timeout", "invalid": "error"}


@dataclass(frozen=True, slots=True)
class LateAck:
    """An ACK that arrived but did not answer the message being waited for."""

    control_id: str | None  # its MSA-2
    ack_code: str | None
    earlier: bool  # True when MSA-2 names a message sent before on this client
    ack: bytes
    application: bool = False  # the application ACK that follows a commit ACK (enhanced mode)


@dataclass(slots=True)
class SendResult:
    """What came back for one message: its replies, their codes, and the outcome they add up to."""

    control_id: str | None
    message_type: str | None = None
    ack_code: str | None = None
    """MSA-1 of the reply that ended the exchange (the application ACK in enhanced mode, or the
    accept ACK when no application ACK follows it)."""
    rtt_ms: float | None = None
    ack: bytes | None = None
    accept_ack_code: str | None = None
    """Enhanced mode: MSA-1 of the accept ACK that came before the application ACK."""
    accept_ack: bytes | None = None
    accept_rtt_ms: float | None = None
    ack_text: str | None = None
    """What the replies say (MSA-3, ERR-8, ERR-3 / ERR-1 texts), for NAKs above all."""
    outcome: str = "ok"
    """Exchange vocabulary: ok, nak, bad_ack, timeout, no_ack_expected, upstream_down, error."""
    mode: str = ""
    error: str | None = None
    error_kind: str | None = None  # connect, send, closed, timeout, invalid
    late_acks: list[LateAck] = field(default_factory=list)
    reconnected: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        """Accepted as asked (or nothing was asked back): the opposite of a failure."""
        return self.outcome in SUCCESS_OUTCOMES

    def as_dict(self) -> dict[str, Any]:
        return {
            "control_id": self.control_id,
            "message_type": self.message_type,
            "outcome": self.outcome,
            "accept_ack_code": self.accept_ack_code,
            "ack_code": self.ack_code,
            "ack_text": self.ack_text,
            "rtt_ms": None if self.rtt_ms is None else round(self.rtt_ms, 3),
            "accept_rtt_ms": None if self.accept_rtt_ms is None else round(self.accept_rtt_ms, 3),
            "mode": self.mode,
            "error": self.error,
            "error_kind": self.error_kind,
            "late_acks": [
                {
                    "control_id": a.control_id,
                    "ack_code": a.ack_code,
                    "earlier": a.earlier,
                    "application": a.application,
                }
                for a in self.late_acks
            ],
            "reconnected": self.reconnected,
            "notes": list(self.notes),
        }


class ConnectError(OSError):
    """The peer could not be reached (refused, unreachable, TLS handshake failed)."""


class MLLPClient:
    """One MLLP connection to ``host:port``, opened on first use and reopened when the peer closes it."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout: float = 10.0,
        connect_timeout: float = 5.0,
        tls: TLSOptions | None = None,
        charset: str | None = None,
        max_frame: int = DEFAULT_MAX_FRAME,
        app_timeout: float | None = None,
        conditional_wait: float = DEFAULT_CONDITIONAL_WAIT_S,
        resend_stale: bool = True,
    ) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        """Seconds to wait for a message's first reply."""
        self.app_timeout = timeout if app_timeout is None else app_timeout
        """Enhanced mode: seconds to wait for the application ACK once the CA came."""
        self.conditional_wait = conditional_wait
        self.connect_timeout = connect_timeout
        self.resend_stale = resend_stale
        """Send again on a fresh connection when a reused one closes before any reply (False: report it
        as closed, as a drill that counts every failure needs)."""
        self.tls = tls
        self.charset = charset
        self._ssl_context = tls.context() if tls else None
        self._sock: socket.socket | None = None
        self._decoder = MLLPDecoder(max_frame)
        self._sent: deque[str] = deque(maxlen=10_000)
        self._sent_set: set[str] = set()
        self._committed: deque[str] = deque(maxlen=1_000)  # answered by CA/CE/CR: an AA/AE/AR may follow
        self._backlog: list[Frame | Problem] = []
        self.connections = 0

    # -- connection ----------------------------------------------------------------------

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def connect(self) -> None:
        """Open the connection now (raises ConnectError with what went wrong)."""
        self.close()
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise ConnectError(f"cannot connect to {self.address}: {reason}") from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._ssl_context is not None:
            server_name = (self.tls.server_name if self.tls else None) or self.host
            try:
                sock = self._ssl_context.wrap_socket(sock, server_hostname=server_name)
            except (ssl.SSLError, OSError) as exc:
                sock.close()
                raise ConnectError(f"TLS handshake with {self.address} failed: {exc}") from None
        self._sock = sock
        self._decoder = MLLPDecoder(self._decoder.max_frame)
        self.connections += 1

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None

    def __enter__(self) -> MLLPClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- sending -------------------------------------------------------------------------

    def send(self, payload: bytes, control_id: str | None = None) -> SendResult:
        """Send one message and wait for what it asks back; never raises for network trouble."""
        meta = extract(payload, self.charset)
        if control_id is None:
            control_id = meta.control_id
        mode = AckMode.of(meta.accept_ack_type, meta.app_ack_type)
        result = SendResult(control_id, message_type=meta.message_code, mode=mode.describe())
        result.notes.extend(mode.problems)
        try:
            frame = encode(payload)
        except ValueError as exc:
            return self._fail(result, "invalid", f"cannot frame the message: {exc}")

        reused = self._sock is not None and self._peer_still_there(result) and self.resend_stale
        for attempt in (1, 2):
            if self._sock is None:
                try:
                    self.connect()
                except ConnectError as exc:
                    return self._fail(result, "connect", str(exc))
                if self.connections > 1:
                    result.reconnected = True
            started = time.perf_counter()
            try:
                self._sock.settimeout(self.timeout)  # not the remainder left by the previous wait
                self._sock.sendall(frame)
            except OSError as exc:
                self.close()
                if reused and attempt == 1:
                    result.notes.append(f"send failed on the reused connection ({exc}); sent again")
                    reused = False
                    continue
                return self._fail(result, "send", f"sending to {self.address} failed: {exc}")
            self._remember(control_id)
            state = mode.start()
            outcome = self._wait(result, state, started)
            if outcome == "retry" and reused and attempt == 1:
                result.notes.append("peer closed the reused connection before answering; sent again")
                reused = False
                continue
            if outcome == "retry":
                return self._fail(result, "closed", f"{self.address} closed the connection before an ACK")
            if result.error is None:
                result.outcome = state.verdict()
            result.notes.extend(n for n in state.notes if n not in result.notes)
            result.ack_text = ack_text(result.ack, self.charset) if result.ack else None
            if result.ack_text is None and result.accept_ack:
                result.ack_text = ack_text(result.accept_ack, self.charset)
            return result
        return result  # pragma: no cover - the loop always returns

    def _peer_still_there(self, result: SendResult) -> bool:
        """Before reusing the connection: collect anything already sent to us, notice a close."""
        sock = self._sock
        assert sock is not None
        poller = select.poll()  # not select.select: no limit on descriptor numbers
        poller.register(sock, select.POLLIN)
        try:
            while True:
                pending = isinstance(sock, ssl.SSLSocket) and sock.pending()
                if not pending and not poller.poll(0):
                    return True
                data = sock.recv(_RECV)
                if not data:
                    break
                self._backlog.extend(self._decoder.feed(data))
        except (OSError, ValueError):
            pass
        self._backlog.extend(self._decoder.close())
        self._absorb_backlog(result)
        self.close()
        return False

    def _absorb_backlog(self, result: SendResult) -> None:
        """Frames that arrived while nobody waited are late ACKs for the record."""
        backlog, self._backlog = self._backlog, []
        for event in backlog:
            if isinstance(event, Frame):
                result.late_acks.append(self._late(event.payload))
            else:
                result.notes.append(event.describe())

    def _wait(self, result: SendResult, state: AckState, started: float) -> str:
        """Read until the message has every reply it asked for ("done"; errors are on the result), or
        the connection closed before any byte came ("retry")."""
        if state.done:
            return "done"  # NE/NE: nothing is owed
        self._absorb_backlog(result)
        sock = self._sock
        assert sock is not None
        received = False
        stage_started = started
        while True:
            waiting = state.waiting()
            limit = self.timeout
            if state.accept_code is not None and waiting == "required":
                limit = self.app_timeout
            elif waiting == "conditional":
                limit = self.conditional_wait
            remaining = stage_started + limit - time.perf_counter()
            if remaining <= 0:
                if waiting == "conditional":
                    verdict = state.silence()
                    if verdict == "timeout":
                        self._fail(result, "timeout", state.notes[-1])
                    return "done"
                what = "application ACK after the CA" if state.accept_code is not None else "ACK"
                self._fail(result, "timeout", f"no {what} from {self.address} within {limit:g} s")
                return "done"
            try:
                sock.settimeout(remaining)
                data = sock.recv(_RECV)
            except TimeoutError:
                continue
            except OSError as exc:
                self.close()
                if not received:
                    return "retry"
                self._fail(result, "closed", f"connection to {self.address} failed before an ACK: {exc}")
                return "done"
            if not data:
                events = self._decoder.close()
                self.close()
                if not received and not events:
                    return "retry"
                if self._take(result, state, events, started):
                    return "done"
                what = "the application ACK" if state.accept_code is not None else "an ACK"
                self._fail(result, "closed", f"{self.address} closed the connection before {what}")
                return "done"
            received = True
            had_accept = state.accept_code is not None
            if self._take(result, state, self._decoder.feed(data), started):
                return "done"
            if not had_accept and state.accept_code is not None:
                stage_started = time.perf_counter()  # the application ACK's own timeout starts now

    def _take(self, result: SendResult, state: AckState, events: list, started: float) -> bool:
        """Take the message's replies from decoded events; True once it has all it asked for.

        What follows the last of them is kept for the next send."""
        for i, event in enumerate(events):
            if not isinstance(event, Frame):
                result.notes.append(event.describe())
                continue
            meta = extract(event.payload, self.charset)
            msa2 = meta.ack_control_id
            code = meta.ack_code
            ours = msa2 == result.control_id or result.control_id is None or not msa2
            if not ours or not state.accepts(code):
                result.late_acks.append(self._late(event.payload, meta))
                continue
            if not msa2 and result.control_id is not None:
                result.notes.append("a reply has no MSA-2; taken as this message's")
            if code is None:
                result.notes.append("a reply has no MSA-1 acknowledgement code")
            elapsed = (time.perf_counter() - started) * 1000.0
            done = state.take(code)
            if not done and reply_kind(code) == "accept" and result.accept_ack is None:
                result.accept_ack, result.accept_ack_code, result.accept_rtt_ms = event.payload, code, elapsed
                if result.control_id is not None:
                    self._committed.append(result.control_id)
                continue
            if not done:
                continue
            result.ack, result.ack_code, result.rtt_ms = event.payload, code, elapsed
            self._backlog.extend(events[i + 1 :])
            return True
        return False

    def _late(self, payload: bytes, meta=None) -> LateAck:
        meta = meta or extract(payload, self.charset)
        msa2 = meta.ack_control_id
        application = msa2 in self._committed and (meta.ack_code or "").startswith("A")
        return LateAck(msa2, meta.ack_code, msa2 in self._sent_set, payload, application)

    def _remember(self, control_id: str | None) -> None:
        if control_id is None:
            return
        if len(self._sent) == self._sent.maxlen:
            self._sent_set.discard(self._sent[0])
        self._sent.append(control_id)
        self._sent_set.add(control_id)

    def _fail(self, result: SendResult, kind: str, message: str) -> SendResult:
        result.error_kind = kind
        result.error = message
        result.outcome = _OUTCOMES.get(kind, "error")
        return result
