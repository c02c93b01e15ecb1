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
import time
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Any

from twisted.internet import protocol
from twisted.internet.endpoints import connectProtocol

from harness.proxy import endpoints
from harness.proxy.config import MLLPChannelConfig
from harness.proxy.endpoints import UpstreamDialer, set_nodelay
from harness.proxy.limits import Backlog, ConnectionBudget, RefusedConnection, refusal
from harness.proxy.log import FailureLog, log_stderr
from harness.proxy.mllp.session import (
    CancelTimer,
    Capture,
    CloseSender,
    CloseUpstream,
    Connect,
    MLLPSession,
    PauseSender,
    ReplaceUpstream,
    ResumeSender,
    SessionSettings,
    StartTimer,
    ToSender,
    ToUpstream,
)
from harness.proxy.outbox import Outbox
from harness.proxy.shell import CommitRelay
from harness.proxy.stats import ChannelStats, LiveState

SOCKETS_PER_SENDER = 2
"""A sender's socket and its upstream socket: the upstream's place is held from the accept on."""


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
        log: Callable[..., None] = log_stderr,
        budget: ConnectionBudget | None = None,
    ) -> None:
        self.config = config
        self.budget = budget
        """The process's descriptor budget (shared by every channel), or None for no such limit."""
        self.name = config.name
        self.reactor = reactor
        self.settings = SessionSettings.from_channel(config)
        self.faults = faults
        self.stats = stats or ChannelStats()
        self.writer = writer if config.capture != "off" else None
        self.durable = config.capture == "durable" and self.writer is not None
        self.store_ok = self._store_ok if self.durable else None
        self.fresh_per_message = config.upstream_connection == "per_message"
        """Declared (`upstream_connection: per_message`) or learnt: the upstream closes its connection
        after each reply."""
        self.log = log
        self.connections: set[SenderConnection] = set()
        self.store_errors = 0
        self.relay = CommitRelay(reactor)
        self.warn = FailureLog(config.name, log)
        self.dialer = UpstreamDialer(
            reactor, connect_timeout_s=config.connect_timeout_s, tls=config.upstream_tls
        )
        self.stats.live = self.live_state

    def _store_ok(self) -> bool:
        return self.writer.health.ok

    # -- listening ---------------------------------------------------------------------------------

    def factory(self) -> protocol.Factory:
        channel = self

        class _Factory(protocol.Factory):
            noisy = False

            def buildProtocol(self, addr: Any) -> protocol.Protocol:
                why = refusal(channel, SOCKETS_PER_SENDER)
                return RefusedConnection(channel, why, kind="hl7v2") if why else SenderConnection(channel)

        return _Factory()

    def release(self) -> None:
        if self.budget is not None:
            self.budget.give(SOCKETS_PER_SENDER)

    def listen(self) -> Any:
        """Start listening; returns the listening port. Raises CannotListenError when taken."""
        return endpoints.listen(self.reactor, self.config.listen, self.factory(), self.config.tls)

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

    def live_state(self) -> LiveState:
        """In flight, queued and upstream connections now, for /metrics (walks the open connections)."""
        in_flight = queued = 0
        upstreams: dict[str, int] = {}
        for conn in list(self.connections):
            session = conn.session
            if session is not None:
                in_flight += session.awaiting_replies()
                queued += session.queued()
            upstream = conn.upstream
            if upstream is not None and upstream.address is not None:
                upstreams[upstream.address] = upstreams.get(upstream.address, 0) + 1
        return LiveState(in_flight, queued, upstreams)

    # -- writer pressure ---------------------------------------------------------------------------

    def pause_all(self, paused: bool) -> None:
        for conn in list(self.connections):
            conn.set_store_pressure(paused)


class UpstreamConnection(protocol.Protocol):
    def __init__(self, owner: SenderConnection, address: str | None = None) -> None:
        self.owner = owner
        self.address = address

    def connectionMade(self) -> None:
        set_nodelay(self.transport)
        owner = self.owner
        # the upstream not reading what the proxy writes: stop reading the sender until it does
        self.transport.registerProducer(
            Backlog(lambda: owner._pause("upstream_backlog"), lambda: owner._resume("upstream_backlog")), True
        )
        if owner.upstream_reads_paused:
            self.transport.pauseProducing()

    def dataReceived(self, data: bytes) -> None:
        owner = self.owner
        owner.channel.stats.bytes_in += len(data)
        if owner.upstream is self:
            owner.run(owner.session.upstream_data(data))

    def connectionLost(self, reason: Any = None) -> None:
        self.owner.upstream_lost(self, reason)


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
        self.to_sender = Outbox(self.reactor, on_idle=self._flush)
        self.to_upstream = Outbox(self.reactor)
        self.connected = False
        self._paused_by = set()
        self.upstream_reads_paused = False
        """The sender is not reading its replies: the upstream's are left in its socket meanwhile."""

    # -- Twisted callbacks ---------------------------------------------------------------------------

    def connectionMade(self) -> None:
        set_nodelay(self.transport)
        peer = self.transport.getPeer()
        client = f"{getattr(peer, 'host', '?')}:{getattr(peer, 'port', '?')}"
        channel = self.channel
        self.session = MLLPSession(
            channel.settings, client_addr=client, faults=channel.faults, store_ok=channel.store_ok,
            fresh_per_message=channel.fresh_per_message,
        )
        self.to_sender.transport = self.transport
        # the sender not reading its replies: stop reading it and the upstream until it does
        self.transport.registerProducer(Backlog(self._sender_full, self._sender_drained), True)
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
        if self in self.channel.connections:
            self.channel.release()
        self.channel.connections.discard(self)
        self.channel.stats.connection_closed()
        self.run(self.session.sender_closed())
        self._maybe_done()

    def shutdown(self) -> None:
        """The proxy is stopping: capture what is still in flight before the writers flush."""
        if self.session is not None:
            self.run(self.session.shutdown())

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
            elif cls is ReplaceUpstream:
                old, self.upstream = self.upstream, None
                self.to_upstream.transport = None
                if old is not None and old.transport is not None:
                    old.transport.loseConnection()  # its close is not this session's news any more
                self._connect()
            elif cls is PauseSender:
                self._pause("queue")
            elif cls is ResumeSender:
                self._resume("queue")
        self._maybe_done()

    def _capture(self, cap: Capture) -> None:
        ex = cap.exchange
        channel = self.channel
        writer = channel.writer
        if channel.durable and not cap.optional:
            entry = [False, deque(cap.then)]
            self.ops.append(entry)
            try:
                writer.submit(ex, partial(channel.relay, self, entry), replaces=cap.replaces)
            except Exception as exc:  # noqa: BLE001 - a closed writer must not kill the connection
                self.committed(entry, exc)
        else:
            self._then(cap.then)  # fast and off: the sender is not kept waiting for the bookkeeping
            if writer is not None:
                try:
                    writer.submit(ex, replaces=cap.replaces)
                except Exception as exc:  # noqa: BLE001
                    channel.store_errors += 1
                    channel.log("error", f"capture failed: {exc}")
        if ex.outcome == "pending":
            return  # counted once, when the application ACK (or its absence) completes it
        answered = ex.latency_ms is not None and (ex.response is not None or ex.accept_response is not None)
        channel.stats.finished(ex.outcome, ex.message_type, ex.latency_ms / 1000.0 if answered else None)
        if ex.outcome not in ("ok", "nak", "fault", "no_ack_expected"):
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
            proto = UpstreamConnection(self, str(address))
            started = time.monotonic()
            d = connectProtocol(self.channel.dialer.endpoint(address), proto)

            def ok(_: Any) -> None:
                self.upstream = proto
                self.to_upstream.transport = proto.transport
                self.to_upstream.queue.clear()
                self.to_upstream.busy = False
                self.channel.stats.upstream_connected(str(address))
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
        if self.session.fresh_per_message:
            self.channel.fresh_per_message = True
        self._maybe_done()

    # -- back-pressure -----------------------------------------------------------------------------

    def set_store_pressure(self, on: bool) -> None:
        if on:
            self._pause("store")
        else:
            self._resume("store")

    def _sender_full(self) -> None:
        self._pause("sender_backlog")
        self.upstream_reads_paused = True
        if self.session is not None:
            self.session.replies_held = True
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.pauseProducing()

    def _sender_drained(self) -> None:
        self._resume("sender_backlog")
        self.upstream_reads_paused = False
        if self.session is not None:
            self.session.replies_held = False
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.resumeProducing()

    def _pause(self, why: str) -> None:
        if not self._paused_by and self.connected:
            self.transport.pauseProducing()
        self._paused_by.add(why)
        if self.session is not None:
            self.session.sender_reads_paused = True

    def _resume(self, why: str) -> None:
        self._paused_by.discard(why)
        if not self._paused_by and self.connected:
            self.transport.resumeProducing()
        if self.session is not None:
            self.session.sender_reads_paused = bool(self._paused_by)

    def _maybe_done(self) -> None:
        if self.session is not None and self.session.finished and not self.ops and self.upstream is None:
            self.deadlines.clear()
            if self._tick is not None and self._tick.active():
                self._tick.cancel()
            self._tick = None
            self._tick_at = math.inf
