"""The MLLP proxy's Twisted shell: sockets, timers and the capture writer around `MLLPSession`.

Each sender connection gets one `SenderConnection`, which owns a session (every decision), at most
one upstream connection, its timers, and two outboxes that keep writes in order (a throttled write
holds back what follows it). Actions bound for the sender run in the order the session produced
them, and those attached to a capture wait for it: in durable mode the exchange's commit callback
(on the writer thread, handed to the reactor with callFromThread) releases the reply, so a reply
never reaches a sender before its exchange is on disk.
"""

from __future__ import annotations

import math
import sys
import time
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Any

from twisted.internet import protocol
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.endpoints import (
    HostnameEndpoint,
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
    connectProtocol,
    wrapClientTLS,
)

from proxies.config import Address, MLLPChannelConfig
from proxies.mllp_session import (
    CancelTimer,
    Capture,
    CloseSender,
    CloseUpstream,
    Connect,
    MLLPSession,
    PauseSender,
    ResumeSender,
    SessionSettings,
    StartTimer,
    ToSender,
    ToUpstream,
)
from proxies.stats import ChannelStats

THROTTLE_TICK_S = 0.05


def _log_stderr(level: str, message: str, **fields: Any) -> None:
    extra = " ".join(f"{k}={v}" for k, v in fields.items())
    print(f"{level}: {message}{' ' + extra if extra else ''}", file=sys.stderr, flush=True)


class MLLPChannel:
    """One configured MLLP channel at run time: settings, fault engine, counters, capture writer."""

    def __init__(
        self,
        config: MLLPChannelConfig,
        reactor: Any,
        *,
        faults: Any = None,
        stats: ChannelStats | None = None,
        writer: Any = None,
        log: Callable[..., None] = _log_stderr,
    ) -> None:
        self.config = config
        self.name = config.name
        self.reactor = reactor
        self.settings = SessionSettings.from_channel(config)
        self.faults = faults
        self.stats = stats or ChannelStats()
        self.writer = writer if config.capture != "off" else None
        self.durable = config.capture == "durable" and self.writer is not None
        self.log = log
        self.connections: set[SenderConnection] = set()
        self.store_errors = 0
        self.relay = CommitRelay(reactor)
        self._warned: dict[str, tuple[float, int]] = {}
        self._upstream_tls = self._client_tls_options() if config.upstream_tls is not None else None

    # -- listening ---------------------------------------------------------------------------------

    def factory(self) -> protocol.Factory:
        channel = self

        class _Factory(protocol.Factory):
            noisy = False

            def buildProtocol(self, addr: Any) -> SenderConnection:
                return SenderConnection(channel)

        return _Factory()

    def listen(self) -> Any:
        """Start listening; returns the listening port. Raises CannotListenError when taken."""
        listen = self.config.listen
        tls = self.config.tls
        if tls is None:
            return self.reactor.listenTCP(listen.port, self.factory(), interface=listen.host)
        options = self._server_tls_options()
        return self.reactor.listenSSL(listen.port, self.factory(), options, interface=listen.host)

    def _server_tls_options(self) -> Any:
        from twisted.internet import ssl

        tls = self.config.tls
        cert = ssl.PrivateCertificate.loadPEM(tls.cert.read_bytes() + b"\n" + tls.key.read_bytes())
        if tls.ca is None:
            return cert.options()
        return cert.options(*_load_certificates(tls.ca))

    def _client_tls_options(self) -> Any:
        """What every upstream TLS connection shares: trust root, client certificate (loaded once)."""
        from twisted.internet import ssl

        tls = self.config.upstream_tls
        client_cert = None
        if tls.cert is not None:
            client_cert = ssl.PrivateCertificate.loadPEM(tls.cert.read_bytes() + b"\n" + tls.key.read_bytes())
        if not tls.verify:
            kwargs: dict[str, Any] = {"verify": False}
            if client_cert is not None:
                kwargs.update(privateKey=client_cert.privateKey.original, certificate=client_cert.original)
            return ssl.CertificateOptions(**kwargs)
        trust = ssl.trustRootFromCertificates(_load_certificates(tls.ca)) if tls.ca is not None else None
        return (trust, client_cert)

    def client_tls_for(self, host: str) -> Any:
        from twisted.internet import ssl

        tls = self.config.upstream_tls
        if not tls.verify:
            return self._upstream_tls
        trust, client_cert = self._upstream_tls
        name = tls.server_name or host
        return ssl.optionsForClientTLS(name, trustRoot=trust, clientCertificate=client_cert)

    def endpoint(self, address: Address) -> Any:
        timeout = self.config.connect_timeout_s
        host = address.host
        if isIPAddress(host):
            ep = TCP4ClientEndpoint(self.reactor, host, address.port, timeout=timeout)
        elif isIPv6Address(host):
            ep = TCP6ClientEndpoint(self.reactor, host, address.port, timeout=timeout)
        else:
            ep = HostnameEndpoint(self.reactor, host, address.port, timeout=timeout)
        if self.config.upstream_tls is not None:
            ep = wrapClientTLS(self.client_tls_for(host), ep)
        return ep

    def warn(self, ex: Any) -> None:
        """Log a failed exchange, at most one line per outcome per second (garbage must not flood logs)."""
        now = time.monotonic()
        last, suppressed = self._warned.get(ex.outcome, (0.0, 0))
        if now - last < 1.0:
            self._warned[ex.outcome] = (last, suppressed + 1)
            return
        self._warned[ex.outcome] = (now, 0)
        more = f" (+{suppressed} more since the last line)" if suppressed else ""
        self.log(
            "warning",
            f"channel {self.name}: {ex.outcome}{more}",
            control_id=ex.control_id,
            client=ex.client_addr,
            error=ex.error or "",
        )

    def awaiting(self, within_s: float) -> int:
        """Requests forwarded in the last `within_s` seconds whose replies have not come yet.

        A durable writer's hint (called on its thread) to wait briefly so their captures share its
        commit; older ones are slow in coming and not worth waiting for.
        """
        count = 0
        for conn in list(self.connections):
            session = conn.session
            if session is not None:
                count += session.awaiting_replies(session.clock() - within_s)
        return count

    # -- writer pressure ---------------------------------------------------------------------------

    def pause_all(self, paused: bool) -> None:
        for conn in list(self.connections):
            conn.set_store_pressure(paused)


def _load_certificates(path: Any) -> list[Any]:
    """Every certificate in a PEM file (a CA bundle may hold several)."""
    from twisted.internet import ssl

    data = path.read_bytes()
    certs = []
    marker = b"-----END CERTIFICATE-----"
    for block in data.split(marker)[:-1]:
        certs.append(ssl.Certificate.loadPEM(block + marker + b"\n"))
    if not certs:
        raise ValueError(f"{path}: no PEM certificate found")
    return certs


def direct_write(transport: Any, data: bytes) -> None:
    """Write now when the transport has nothing buffered, else through Twisted's buffer.

    Twisted's TCP `write` only buffers and waits for the next reactor turn (two epoll changes and a
    loop iteration per write); one small reply per message makes that the largest per-message cost.
    Sending at once when nothing is queued keeps the byte order (Twisted's buffer is empty, so
    nothing could overtake) and hands the rest to Twisted when the kernel takes only part.
    """
    sock = getattr(transport, "socket", None)
    if (
        sock is not None
        and transport.connected
        and not transport.disconnecting
        and not transport._tempDataLen
        and transport.offset == len(transport.dataBuffer)
    ):
        try:
            sent = sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            sent = 0  # Twisted's own write path reports the error as a lost connection
        if sent == len(data):
            return
        data = data[sent:]
    transport.write(data)


def _supports_direct_write(transport: Any) -> bool:
    from twisted.internet.tcp import Connection

    return isinstance(transport, Connection) and all(
        hasattr(transport, name) for name in ("_tempDataLen", "offset", "dataBuffer", "socket")
    )


class CommitRelay:
    """Hands durable-commit callbacks from the writer thread to the reactor, one wake-up per batch.

    A group commit finishes many exchanges at once; one `callFromThread` for all of them (instead of
    one each) keeps the reactor from being woken per message.
    """

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self.queue: deque = deque()
        self.scheduled = False

    def __call__(self, conn: SenderConnection, entry: list, result: Any) -> None:
        """Runs on the writer thread."""
        self.queue.append((conn, entry, result))
        if not self.scheduled:
            self.scheduled = True
            self.reactor.callFromThread(self.drain)

    def drain(self) -> None:
        self.scheduled = False
        queue = self.queue
        while queue:
            conn, entry, result = queue.popleft()
            conn.committed(entry, result)


class _Outbox:
    """Writes to one transport in order; a throttled write holds back everything queued after it."""

    __slots__ = ("reactor", "_transport", "queue", "busy", "on_idle", "direct")

    def __init__(self, reactor: Any, on_idle: Callable[[], None] | None = None) -> None:
        self.reactor = reactor
        self._transport: Any = None
        self.queue: deque = deque()
        self.busy = False
        self.on_idle = on_idle
        self.direct = False

    @property
    def transport(self) -> Any:
        return self._transport

    @transport.setter
    def transport(self, transport: Any) -> None:
        self._transport = transport
        self.direct = transport is not None and _supports_direct_write(transport)

    def write(self, data: bytes, bps: int | None = None) -> None:
        if not self.busy and not self.queue and bps is None:
            if self.direct:
                direct_write(self._transport, data)
            elif self._transport is not None:
                self._transport.write(data)
            return
        self.queue.append(("write", data, bps))
        self._pump()

    def close(self, abort: bool = False) -> None:
        if not self.busy and not self.queue:
            self._close(abort)
            return
        self.queue.append(("close", abort, None))
        self._pump()

    def _close(self, abort: bool) -> None:
        t = self.transport
        if t is None:
            return
        if abort:
            t.abortConnection()
        else:
            t.loseConnection()

    def _pump(self) -> None:
        while self.queue and not self.busy:
            kind, value, bps = self.queue.popleft()
            if kind == "close":
                self._close(value)
            elif bps is None:
                if self.transport is not None:
                    self.transport.write(value)
            else:
                self.busy = True
                self._drip(value, bps)
                return
        if not self.busy and self.on_idle is not None:
            self.on_idle()

    def _drip(self, data: bytes, bps: int) -> None:
        if self.transport is None:
            self.busy = False
            self.queue.clear()
            return
        size = max(1, int(bps * THROTTLE_TICK_S))
        self.transport.write(data[:size])
        rest = data[size:]
        if rest:
            self.reactor.callLater(THROTTLE_TICK_S, self._drip, rest, bps)
        else:
            self.busy = False
            self.reactor.callLater(0, self._pump)


class UpstreamConnection(protocol.Protocol):
    def __init__(self, owner: SenderConnection) -> None:
        self.owner = owner

    def connectionMade(self) -> None:
        _nodelay(self.transport)

    def dataReceived(self, data: bytes) -> None:
        owner = self.owner
        owner.channel.stats.bytes_in += len(data)
        if owner.upstream is self:
            owner.run(owner.session.upstream_data(data))

    def connectionLost(self, reason: Any = None) -> None:
        self.owner.upstream_lost(self, reason)


def _nodelay(transport: Any) -> None:
    try:
        transport.setTcpNoDelay(True)
    except Exception:  # noqa: BLE001 - not every transport (e.g. TLS over a test pipe) has it
        pass


class SenderConnection(protocol.Protocol):
    """One sender connection: runs its session's actions."""

    def __init__(self, channel: MLLPChannel) -> None:
        self.channel = channel
        self.reactor = channel.reactor
        self.session: MLLPSession | None = None
        self.upstream: UpstreamConnection | None = None
        self.deadlines: dict[tuple, float] = {}
        self._tick: Any = None
        self._tick_at = math.inf
        self.ops: deque = deque()
        """Sender-bound actions in order: [ready, actions] entries (ready once their capture allows)."""
        self.to_sender = _Outbox(self.reactor, on_idle=self._flush)
        self.to_upstream = _Outbox(self.reactor)
        self.connected = False
        self._paused_by = set()

    # -- Twisted callbacks ---------------------------------------------------------------------------

    def connectionMade(self) -> None:
        _nodelay(self.transport)
        peer = self.transport.getPeer()
        client = f"{getattr(peer, 'host', '?')}:{getattr(peer, 'port', '?')}"
        self.session = MLLPSession(self.channel.settings, client_addr=client, faults=self.channel.faults)
        self.to_sender.transport = self.transport
        self.connected = True
        self.channel.connections.add(self)
        self.channel.stats.connection_opened()
        writer = self.channel.writer
        if writer is not None and getattr(writer, "saturated", False):
            self.set_store_pressure(True)

    def dataReceived(self, data: bytes) -> None:
        self.channel.stats.bytes_in += len(data)
        self.run(self.session.sender_data(data))

    def connectionLost(self, reason: Any = None) -> None:
        self.connected = False
        self.to_sender.transport = None
        self.channel.connections.discard(self)
        self.channel.stats.connection_closed()
        self.run(self.session.sender_closed())
        self._maybe_done()

    # -- running actions -----------------------------------------------------------------------------

    def run(self, actions: list) -> None:
        for action in actions:
            cls = action.__class__
            if cls is ToUpstream:
                self.channel.stats.bytes_out += len(action.data)
                self.to_upstream.write(action.data, action.bps)
            elif cls is Capture:
                self._capture(action)
            elif cls is ToSender or cls is CloseSender:
                if self.ops:
                    self.ops.append([True, deque((action,))])
                    self._flush()
                else:
                    self._sender_action(action)
            elif cls is StartTimer:
                self._start_timer(action)
            elif cls is CancelTimer:
                self.deadlines.pop(action.key, None)
            elif cls is Connect:
                self._connect()
            elif cls is CloseUpstream:
                if self.upstream is not None:
                    self.to_upstream.close()
            elif cls is PauseSender:
                self._pause("queue")
            elif cls is ResumeSender:
                self._resume("queue")
        self._maybe_done()

    def _capture(self, cap: Capture) -> None:
        ex = cap.exchange
        channel = self.channel
        writer = channel.writer
        if channel.durable:
            entry = [False, deque(cap.then)]
            self.ops.append(entry)
            try:
                writer.submit(ex, partial(channel.relay, self, entry))
            except Exception as exc:  # noqa: BLE001 - a closed writer must not kill the connection
                self.committed(entry, exc)
        else:
            self._then(cap.then)  # fast and off: the sender is not kept waiting for the bookkeeping
            if writer is not None:
                try:
                    writer.submit(ex)
                except Exception as exc:  # noqa: BLE001
                    channel.store_errors += 1
                    channel.log("error", f"capture failed: {exc}")
        stats = channel.stats
        stats.outcome(ex.outcome)
        if ex.latency_ms is not None and ex.response is not None:
            stats.observe_latency(ex.latency_ms / 1000.0)
        if ex.outcome not in ("ok", "nak", "fault"):
            channel.warn(ex)

    def _then(self, then: list) -> None:
        if not then:
            return
        if self.ops:
            self.ops.append([True, deque(then)])
            self._flush()
        else:
            for action in then:
                self._sender_action(action)

    def committed(self, entry: list, result: Any) -> None:
        if isinstance(result, BaseException):
            # Not on disk: the sender must not get the reply (durable promise); closing makes it resend.
            self.channel.store_errors += 1
            self.channel.log(
                "error", f"channel {self.channel.name}: capture commit failed, reply withheld: {result}"
            )
            entry[1] = deque([CloseSender()])
        entry[0] = True
        self._flush()
        self._maybe_done()

    def _flush(self) -> None:
        ops = self.ops
        while ops and not self.to_sender.busy:
            entry = ops[0]
            if not entry[0]:
                return
            actions = entry[1]
            while actions and not self.to_sender.busy:
                self._sender_action(actions.popleft())
            if not actions:
                ops.popleft()

    def _sender_action(self, action: Any) -> None:
        cls = action.__class__
        if cls is ToSender:
            if self.connected:
                self.channel.stats.bytes_out += len(action.data)
                self.to_sender.write(action.data, action.bps)
        elif cls is CloseSender:
            if self.connected:
                self.to_sender.close(action.abort)
        elif cls is StartTimer:
            self._start_timer(action)

    def _start_timer(self, action: StartTimer) -> None:
        """Timers are deadlines in a dict under one reactor call (cancelling is a dict pop).

        Every message starts and cancels an ACK timer; a DelayedCall each would cost more than the
        rest of the message's bookkeeping.
        """
        at = self.reactor.seconds() + action.seconds
        self.deadlines[action.key] = at
        if at < self._tick_at:
            self._schedule(at)

    def _schedule(self, at: float) -> None:
        delay = max(0.0, at - self.reactor.seconds())
        if self._tick is not None and self._tick.active():
            self._tick.reset(delay)
        else:
            self._tick = self.reactor.callLater(delay, self._on_tick)
        self._tick_at = at

    def _on_tick(self) -> None:
        self._tick = None
        self._tick_at = math.inf
        now = self.reactor.seconds()
        due = sorted((at, key) for key, at in self.deadlines.items() if at <= now)
        for at, key in due:
            if self.deadlines.get(key) == at:
                del self.deadlines[key]
                self.run(self.session.timer(key))
        if self.deadlines:
            first = min(self.deadlines.values())
            if first < self._tick_at:
                self._schedule(first)

    # -- upstream ------------------------------------------------------------------------------------

    def _connect(self) -> None:
        addresses = self.channel.config.upstreams
        errors: list[str] = []

        def attempt(i: int) -> None:
            if i >= len(addresses):
                self.run(self.session.upstream_connect_failed("; ".join(errors)))
                return
            address = addresses[i]
            proto = UpstreamConnection(self)
            started = time.monotonic()
            d = connectProtocol(self.channel.endpoint(address), proto)

            def ok(_: Any) -> None:
                self.upstream = proto
                self.to_upstream.transport = proto.transport
                self.to_upstream.queue.clear()
                self.to_upstream.busy = False
                if i > 0:
                    self.channel.log(
                        "warning",
                        f"channel {self.channel.name}: upstream {addresses[0]} unavailable, using {address}",
                    )
                self.run(self.session.upstream_connected(str(address)))

            def failed(failure: Any) -> None:
                waited = time.monotonic() - started
                errors.append(f"{address}: {failure.getErrorMessage()} (after {waited:.1f} s)")
                attempt(i + 1)

            d.addCallbacks(ok, failed)

        attempt(0)

    def upstream_lost(self, proto: UpstreamConnection, reason: Any) -> None:
        if proto is not self.upstream:
            return
        self.upstream = None
        self.to_upstream.transport = None
        text = reason.getErrorMessage() if reason is not None else "connection closed"
        self.run(self.session.upstream_closed(text))
        self._maybe_done()

    # -- back-pressure -----------------------------------------------------------------------------

    def set_store_pressure(self, on: bool) -> None:
        if on:
            self._pause("store")
        else:
            self._resume("store")

    def _pause(self, why: str) -> None:
        if not self._paused_by and self.connected:
            self.transport.pauseProducing()
        self._paused_by.add(why)

    def _resume(self, why: str) -> None:
        self._paused_by.discard(why)
        if not self._paused_by and self.connected:
            self.transport.resumeProducing()

    def _maybe_done(self) -> None:
        if self.session is not None and self.session.finished and not self.ops and self.upstream is None:
            self.deadlines.clear()
            if self._tick is not None and self._tick.active():
                self._tick.cancel()
            self._tick = None
            self._tick_at = math.inf
