"""The HTTP reverse proxy's Twisted shell: sockets, the upstream pool, timers and the capture writer.

Every decision is `harness.proxy.http.session.HttpSession`'s (one per client connection); this module
carries out its commands (`harness.proxy.commands`) and feeds it what happens. Which idle connection
a request gets is `harness.proxy.http.pool`; ordering, the durable commit gate, pausing by reason and
timers come from the shared kit `harness.proxy.shell`.

Back-pressure runs both ways through Twisted's producer/consumer interfaces: when the client's
transport buffer is full the session pauses the upstream's reading (and the other way round for a
request body), and client-bound bytes waiting on a durable commit beyond `GATE_BYTES` pause the
upstream too.
"""

from __future__ import annotations

import time
from typing import Any

from twisted.internet import protocol
from twisted.internet.endpoints import connectProtocol
from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

from harness.proxy import endpoints
from harness.proxy.commands import (
    CancelTimer,
    Capture,
    CloseClient,
    CloseUpstream,
    Connect,
    Pause,
    ReleaseUpstream,
    Resume,
    StartTimer,
    ToClient,
    ToUpstream,
)
from harness.proxy.config import Address
from harness.proxy.endpoints import UpstreamDialer, set_nodelay
from harness.proxy.http.config import HTTPChannelConfig
from harness.proxy.http.pool import UpstreamPool
from harness.proxy.http.session import HttpSession, SessionSettings, error_reply
from harness.proxy.limits import ConnectionBudget, RefusedConnection, refusal
from harness.proxy.log import FailureLog, log_stderr
from harness.proxy.outbox import Outbox
from harness.proxy.shell import CommitGate, CommitRelay, Deadlines, Pauser, count, submit_fast
from harness.proxy.stats import ChannelStats
from harness.tls import HTTP_ALPN

SOCKETS_PER_CLIENT = 2
"""A client's socket and the upstream connection it holds while a request is on its way."""
GATE_BYTES = 1024 * 1024
"""Client-bound bytes waiting (on a commit, a slow write) beyond which the upstream is not read."""


class HTTPChannel:
    """One configured HTTP channel at run time: settings, faults, counters, writer, upstream pool."""

    def __init__(
        self,
        config: HTTPChannelConfig,
        reactor: Any,
        *,
        faults: Any = None,
        stats: ChannelStats | None = None,
        writer: Any = None,
        log: Any = log_stderr,
        budget: ConnectionBudget | None = None,
    ) -> None:
        self.config = config
        self.budget = budget
        """The process's descriptor budget (shared by every channel), or None for no such limit."""
        self.name = config.name
        self.reactor = reactor
        self.faults = faults
        self.stats = stats or ChannelStats()
        self.writer = writer if config.capture != "off" else None
        self.durable = config.capture == "durable" and self.writer is not None
        self.store_ok = self._store_ok if self.durable else None
        self.log = log
        self.connections: set[ClientConnection] = set()
        self.store_errors = 0
        self.relay = CommitRelay(reactor)
        self.warn = FailureLog(config.name, log)
        self.dialer = UpstreamDialer(
            reactor, connect_timeout_s=config.connect_timeout_s, tls=config.upstream_tls, protocols=HTTP_ALPN
        )
        self.pool = UpstreamPool(config.upstreams, config.pool_size)
        self.upstream_hosts = [str(a) for a in config.upstreams]
        self.settings = SessionSettings.from_channel(config, durable=self.durable)

    def _store_ok(self) -> bool:
        return self.writer.health.ok

    def factory(self) -> protocol.Factory:
        channel = self

        class _Factory(protocol.Factory):
            noisy = False

            def buildProtocol(self, addr: Any) -> protocol.Protocol:
                why = refusal(channel, SOCKETS_PER_CLIENT)
                if why:
                    text = f"connection refused: {why}"
                    greeting = error_reply(503, "Service Unavailable", text, close=True)
                    return RefusedConnection(channel, why, kind=channel.config.kind, greeting=greeting)
                return ClientConnection(channel)

        return _Factory()

    def release_sockets(self) -> None:
        if self.budget is not None:
            self.budget.give(SOCKETS_PER_CLIENT)

    def listen(self) -> Any:
        config = self.config
        return endpoints.listen(
            self.reactor, config.listen, self.factory(), config.tls, backlog=1024, protocols=HTTP_ALPN
        )

    def pause_all(self, paused: bool) -> None:
        for conn in list(self.connections):
            conn.set_store_pressure(paused)

    def acquire(self, owner: ClientConnection, fresh: bool) -> None:
        """An upstream connection for `owner`: an idle pooled one (unless `fresh`), else a new one to the
        first upstream that accepts (backups in order)."""
        conn = None if fresh else self.pool.take()
        if conn is not None:
            owner.upstream_ready(conn, True)
            return
        self._connect(owner, 0, [])

    def _connect(self, owner: ClientConnection, i: int, errors: list[str]) -> None:
        addresses = self.config.upstreams
        if i >= len(addresses):
            owner.run(owner.session.upstream_failed("; ".join(errors)))
            return
        address = addresses[i]
        proto = UpstreamConnection(self, address)
        started = time.monotonic()

        def ok(_: Any) -> None:
            if i > 0:
                self.log(
                    "warning", f"channel {self.name}: upstream {addresses[0]} unavailable, using {address}"
                )
            owner.upstream_ready(proto, False)

        def failed(failure: Any) -> None:
            errors.append(
                f"{address}: {failure.getErrorMessage()} (after {time.monotonic() - started:.1f} s)"
            )
            self._connect(owner, i + 1, errors)

        connectProtocol(self.dialer.endpoint(address), proto).addCallbacks(ok, failed)

    def release(self, conn: UpstreamConnection) -> None:
        """Back to the pool after a complete response on a keep-alive connection (else closed)."""
        conn.owner = None
        if not self.pool.put(conn):
            conn.transport.unregisterProducer()
            conn.transport.loseConnection()


@implementer(IPushProducer)
class _Pressure:
    """Registered on a transport: Twisted says when its write buffer is full and when it drained."""

    def __init__(self, on_full: Any) -> None:
        self.on_full = on_full

    def pauseProducing(self) -> None:
        self.on_full(True)

    def resumeProducing(self) -> None:
        self.on_full(False)

    def stopProducing(self) -> None:
        pass


class UpstreamConnection(protocol.Protocol):
    def __init__(self, channel: HTTPChannel, address: Address) -> None:
        self.channel = channel
        self.address = address
        self.owner: ClientConnection | None = None
        self.connected = False

    def connectionMade(self) -> None:
        self.connected = True
        set_nodelay(self.transport)
        self.transport.registerProducer(_Pressure(self._full), True)

    def _full(self, full: bool) -> None:
        if self.owner is not None:
            self.owner.run(self.owner.session.upstream_full(full))

    def dataReceived(self, data: bytes) -> None:
        self.channel.stats.bytes_in += len(data)
        owner = self.owner
        if owner is None:  # bytes nobody asked for on an idle connection: it cannot be trusted
            self.transport.abortConnection()
            return
        owner.run(owner.session.upstream_data(data))

    def connectionLost(self, reason: Any = None) -> None:
        self.connected = False
        self.channel.pool.forget(self)
        owner = self.owner
        if owner is not None:
            owner.upstream_lost(self, reason)


class ClientConnection(protocol.Protocol):
    """One client connection: carries out its session's commands."""

    def __init__(self, channel: HTTPChannel) -> None:
        self.channel = channel
        self.reactor = channel.reactor
        self.session: HttpSession | None = None
        self.upstream: UpstreamConnection | None = None
        self.outbox = Outbox(self.reactor, on_idle=self._flush)
        self.gate = CommitGate(
            self.reactor,
            self._to_client,
            blocked=lambda: self.outbox.busy,
            on_commit_error=self._commit_failed,
        )
        self.deadlines = Deadlines(self.reactor, self._due)
        self.reading = Pauser()
        self.upstream_reading = Pauser()
        self.connected = False

    # -- Twisted callbacks ---------------------------------------------------------------------------

    def connectionMade(self) -> None:
        set_nodelay(self.transport)
        peer = self.transport.getPeer()
        client = f"{getattr(peer, 'host', '?')}:{getattr(peer, 'port', '?')}"
        channel = self.channel
        self.session = HttpSession(
            channel.settings, client_addr=client, faults=channel.faults, store_ok=channel.store_ok
        )
        self.outbox.transport = self.transport
        self.reading.attach(self.transport)
        self.transport.registerProducer(_Pressure(self._client_full), True)
        self.connected = True
        channel.connections.add(self)
        channel.stats.connection_opened()
        if channel.writer is not None and getattr(channel.writer, "saturated", False):
            self.set_store_pressure(True)
        self.run(self.session.start())

    def dataReceived(self, data: bytes) -> None:
        self.channel.stats.bytes_in += len(data)
        self.run(self.session.client_data(data))

    def connectionLost(self, reason: Any = None) -> None:
        self.connected = False
        self.outbox.transport = None
        self.reading.transport = None
        self.gate.clear()
        if self in self.channel.connections:
            self.channel.release_sockets()
        self.channel.connections.discard(self)
        self.channel.stats.connection_closed()
        self.run(self.session.client_closed())
        self.deadlines.clear()

    def _client_full(self, full: bool) -> None:
        if self.session is not None:
            self.run(self.session.client_full(full))

    # -- carrying out commands -------------------------------------------------------------------------

    def run(self, commands: list) -> None:
        for command in commands:
            cls = command.__class__
            if cls is ToUpstream:
                up = self.upstream
                if up is not None and command.data:
                    self.channel.stats.bytes_out += len(command.data)
                    up.transport.write(command.data)
            elif cls is ToClient or cls is CloseClient:
                self.gate.send((command,))
            elif cls is Capture:
                self._capture(command)
            elif cls is StartTimer:
                self.deadlines.start(command.key, command.seconds)
            elif cls is CancelTimer:
                self.deadlines.cancel(command.key)
            elif cls is Connect:
                self.channel.acquire(self, command.fresh)
            elif cls is ReleaseUpstream:
                up = self._detach()
                if up is not None:
                    self.channel.release(up)
            elif cls is CloseUpstream:
                up = self._detach()
                if up is not None:
                    up.transport.unregisterProducer()
                    up.transport.abortConnection() if command.abort else up.transport.loseConnection()
            elif cls is Pause or cls is Resume:
                pauser = self.reading if command.side == "client" else self.upstream_reading
                (pauser.pause if cls is Pause else pauser.resume)(command.reason)
        self._gate_pressure()

    def _capture(self, cap: Capture) -> None:
        channel = self.channel
        if channel.durable and not cap.optional:
            self.gate.submit(channel.writer, cap.exchange, cap.then, channel.relay)
        else:
            self.gate.send(cap.then)
            submit_fast(channel, cap.exchange)
        count(channel, cap.exchange)

    def _to_client(self, command: Any) -> None:
        if not self.connected:
            return
        if command.__class__ is ToClient:
            self.channel.stats.bytes_out += len(command.data)
            self.outbox.write(command.data, command.bps)
        else:
            # Twisted does not close a transport while a producer is registered on it
            self.transport.unregisterProducer()
            self.outbox.close(command.abort)

    def _flush(self) -> None:
        self.gate.flush()
        self._gate_pressure()

    def _gate_pressure(self) -> None:
        if self.gate.queued_bytes > GATE_BYTES:
            self.upstream_reading.pause("gate")
        elif "gate" in self.upstream_reading.reasons:
            self.upstream_reading.resume("gate")

    def _commit_failed(self, error: BaseException) -> None:
        channel = self.channel
        channel.store_errors += 1
        channel.log("error", f"channel {channel.name}: capture commit failed, response withheld: {error}")

    def _due(self, key: Any) -> None:
        self.run(self.session.timer(key))

    # -- the upstream ----------------------------------------------------------------------------------

    def upstream_ready(self, conn: UpstreamConnection, reused: bool) -> None:
        if not self.connected:
            self.channel.release(conn)
            return
        self.upstream = conn
        conn.owner = self
        self.upstream_reading.attach(conn.transport)
        self.run(self.session.upstream_ready(reused, str(conn.address)))

    def _detach(self) -> UpstreamConnection | None:
        up = self.upstream
        if up is not None:
            self.upstream = None
            up.owner = None
            self.upstream_reading.detach()
        return up

    def upstream_lost(self, conn: UpstreamConnection, reason: Any) -> None:
        if conn is not self.upstream:
            return
        self._detach()
        why = reason.getErrorMessage() if reason is not None else "connection closed"
        self.run(self.session.upstream_closed(why))

    # -- store pressure --------------------------------------------------------------------------------

    def set_store_pressure(self, on: bool) -> None:
        if on:
            self.reading.pause("store")
        else:
            self.reading.resume("store")
