"""Blocking MLLP client: send a message, wait for the ACK that names it.

An ACK is taken as a message's answer only when its MSA-2 equals the message's MSH-10: a late ACK
for an earlier message (an engine catching up after a timeout) is reported, never mistaken for the
current one's (the Mirth bug in peers.md). Many peers close the connection after each message;
the client reconnects transparently and, when a reused connection turns out to be closed before
anything came back, sends the message again on a fresh one. One client is one connection and is
not thread-safe; replay uses one client per worker thread.
"""

from __future__ import annotations

import select
import socket
import ssl
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from harness.hl7v2.meta import extract
from harness.mllp import DEFAULT_MAX_FRAME, Frame, MLLPDecoder, Problem, encode

ACCEPTED = frozenset({"AA", "CA"})
_RECV = 65536


@dataclass(frozen=True, slots=True)
class TLSOptions:
    """TLS settings; ``ca`` None means the system's trust store, ``verify=False`` trusts anything."""

    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    server_name: str | None = None
    verify: bool = True

    def context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.ca)
        if not self.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if self.cert:
            ctx.load_cert_chain(self.cert, self.key)
        return ctx


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
    control_id: str | None
    ack_code: str | None = None
    rtt_ms: float | None = None
    ack: bytes | None = None
    error: str | None = None
    error_kind: str | None = None  # connect, send, closed, timeout, invalid
    late_acks: list[LateAck] = field(default_factory=list)
    reconnected: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return self.error is None and self.ack_code in ACCEPTED

    def as_dict(self) -> dict[str, Any]:
        return {
            "control_id": self.control_id,
            "ack_code": self.ack_code,
            "rtt_ms": None if self.rtt_ms is None else round(self.rtt_ms, 3),
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
    ) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.connect_timeout = connect_timeout
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
        """Send one message and wait for its ACK; never raises for network trouble (see result.error)."""
        if control_id is None:
            control_id = extract(payload, self.charset).control_id
        result = SendResult(control_id)
        try:
            frame = encode(payload)
        except ValueError as exc:
            return self._fail(result, "invalid", f"cannot frame the message: {exc}")

        reused = self._sock is not None and self._peer_still_there(result)
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
            outcome = self._wait(result, started)
            if outcome == "retry" and reused and attempt == 1:
                result.notes.append("peer closed the reused connection before answering; sent again")
                reused = False
                continue
            if outcome == "retry":
                return self._fail(result, "closed", f"{self.address} closed the connection before an ACK")
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

    def _wait(self, result: SendResult, started: float) -> str:
        """Read until the matching ACK ("done"), a timeout ("done"), or a close before any byte ("retry")."""
        self._absorb_backlog(result)
        sock = self._sock
        assert sock is not None
        deadline = started + self.timeout
        received = False
        while True:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                self._fail(result, "timeout", f"no ACK from {self.address} within {self.timeout:g} s")
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
                if self._take(result, events, started):
                    return "done"
                self._fail(result, "closed", f"{self.address} closed the connection before an ACK")
                return "done"
            received = True
            if self._take(result, self._decoder.feed(data), started):
                return "done"

    def _take(self, result: SendResult, events: list, started: float) -> bool:
        """Look through decoded events for the answer; keep what follows it for the next send."""
        for i, event in enumerate(events):
            if not isinstance(event, Frame):
                result.notes.append(event.describe())
                continue
            meta = extract(event.payload, self.charset)
            msa2 = meta.ack_control_id
            if msa2 == result.control_id or result.control_id is None or not msa2:
                result.rtt_ms = (time.perf_counter() - started) * 1000.0
                result.ack = event.payload
                result.ack_code = meta.ack_code
                if not msa2 and result.control_id is not None:
                    result.notes.append("the ACK has no MSA-2; taken as this message's answer")
                if meta.ack_code is None:
                    result.notes.append("the answer has no MSA-1 acknowledgement code")
                elif meta.ack_code.startswith("C") and result.control_id is not None:
                    self._committed.append(result.control_id)
                self._backlog.extend(events[i + 1 :])
                return True
            result.late_acks.append(self._late(event.payload, meta))
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
        return result
