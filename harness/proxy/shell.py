"""The shared parts of the proxy's Twisted shells: what every protocol's shell does the same way.

- `CommitGate`: client-bound commands leave in the order the session produced them; those attached to
  a durable capture wait for its commit (the writer thread's callback reaches the reactor through a
  `CommitRelay`, one wake-up per group commit), and a `Sleep` holds back everything after it. A
  commit that fails replaces what waited on it by an abort: no client gets an answer the store lacks.
- `Pauser`: stop reading a transport for named reasons (store pressure, a full peer, a fault holding
  the connection); reading resumes when the last reason is gone.
- `Deadlines`: a connection's timers as deadlines in a dict under one reactor call, so starting and
  cancelling one per message costs a dict operation, not a DelayedCall.
- `capture`: count, log and submit an exchange the same way for every protocol.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from harness.proxy.commands import CloseClient, Sleep, ToClient


class CommitRelay:
    """Hands durable-commit callbacks from the writer thread to the reactor, one wake-up per batch.

    A group commit finishes many exchanges at once; one `callFromThread` for all of them (instead of
    one each) keeps the reactor from being woken per message. What waits is anything with
    `committed(entry, result)`: a `CommitGate`, or an MLLP sender connection.
    """

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self.queue: deque = deque()
        self.scheduled = False

    def __call__(self, gate: Any, entry: list, result: Any) -> None:
        """Runs on the writer thread."""
        self.queue.append((gate, entry, result))
        if not self.scheduled:
            self.scheduled = True
            self.reactor.callFromThread(self.drain)

    def drain(self) -> None:
        self.scheduled = False
        queue = self.queue
        while queue:
            gate, entry, result = queue.popleft()
            gate.committed(entry, result)


class CommitGate:
    """Client-bound commands in order; `perform(command)` carries one out.

    `blocked()` says the transport cannot take more now (a throttled write in progress); call
    `flush()` when it can again. `queued_bytes` is what waits here, for back-pressure.
    """

    __slots__ = ("reactor", "perform", "blocked", "on_commit_error", "queue", "sleeping", "queued_bytes")

    def __init__(
        self,
        reactor: Any,
        perform: Callable[[Any], None],
        *,
        blocked: Callable[[], bool] = lambda: False,
        on_commit_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.reactor = reactor
        self.perform = perform
        self.blocked = blocked
        self.on_commit_error = on_commit_error
        self.queue: deque[list] = deque()
        """[ready, deque of commands] entries; an entry is not ready while its commit is pending."""
        self.sleeping = False
        self.queued_bytes = 0

    @property
    def idle(self) -> bool:
        return not self.queue and not self.sleeping

    def send(self, commands: Iterable[Any]) -> None:
        """Carry out `commands` now, or after what is still waiting."""
        commands = list(commands)
        if not commands:
            return
        if self.idle and not self.blocked():
            for i, command in enumerate(commands):
                if command.__class__ is Sleep or self.blocked():
                    self._enqueue(True, commands[i:])
                    self.flush()
                    return
                self.perform(command)
            return
        self._enqueue(True, commands)
        self.flush()

    def hold(self, commands: Iterable[Any]) -> list:
        """Queue `commands` until `committed(entry, ...)` for the returned entry."""
        return self._enqueue(False, list(commands))

    def submit(self, writer: Any, exchange: Any, then: Iterable[Any], relay: CommitRelay) -> None:
        """Durable capture: `then` waits for the exchange's commit."""
        entry = self.hold(then)
        try:
            writer.submit(exchange, partial(relay, self, entry))
        except Exception as exc:  # noqa: BLE001 - a closed writer must not kill the connection
            self.committed(entry, exc)

    def committed(self, entry: list, result: Any) -> None:
        if isinstance(result, BaseException):
            # not on disk: the client must not get the answer (durable promise); closing says so
            self.queued_bytes -= _size(entry[1])
            entry[1] = deque([CloseClient(abort=True)])
            if self.on_commit_error is not None:
                self.on_commit_error(result)
        entry[0] = True
        self.flush()

    def flush(self) -> None:
        queue = self.queue
        while queue and not self.sleeping and not self.blocked():
            entry = queue[0]
            if not entry[0]:
                return
            commands = entry[1]
            while commands and not self.sleeping and not self.blocked():
                command = commands.popleft()
                if command.__class__ is Sleep:
                    self.sleeping = True
                    self.reactor.callLater(command.seconds, self._wake)
                    break
                if command.__class__ is ToClient:
                    self.queued_bytes -= len(command.data)
                self.perform(command)
            if not commands:
                queue.popleft()

    def clear(self) -> None:
        """The client is gone: nothing waiting here can be delivered."""
        self.queue.clear()
        self.queued_bytes = 0

    def _wake(self) -> None:
        self.sleeping = False
        self.flush()

    def _enqueue(self, ready: bool, commands: list) -> list:
        entry = [ready, deque(commands)]
        self.queue.append(entry)
        self.queued_bytes += _size(commands)
        return entry


def _size(commands: Iterable[Any]) -> int:
    return sum(len(c.data) for c in commands if c.__class__ is ToClient)


class Pauser:
    """Pause a transport's reading for named reasons."""

    __slots__ = ("transport", "reasons")

    def __init__(self, transport: Any = None) -> None:
        self.transport = transport
        self.reasons: set[str] = set()

    def pause(self, reason: str) -> None:
        if not self.reasons and self.transport is not None:
            self.transport.pauseProducing()
        self.reasons.add(reason)

    def resume(self, reason: str) -> None:
        if reason not in self.reasons:
            return
        self.reasons.discard(reason)
        if not self.reasons and self.transport is not None:
            self.transport.resumeProducing()

    def attach(self, transport: Any) -> None:
        """A new transport takes the current reasons over (paused at once when there are any)."""
        self.transport = transport
        if self.reasons and transport is not None:
            transport.pauseProducing()

    def detach(self) -> Any:
        """Let go of the transport, reading again (it may go back to a pool)."""
        transport, self.transport = self.transport, None
        if self.reasons and transport is not None and getattr(transport, "connected", True):
            transport.resumeProducing()
        return transport


class Deadlines:
    """Keyed deadlines under one reactor call; `on_due(key)` runs for each that passes."""

    __slots__ = ("reactor", "on_due", "at", "_call", "_call_at")

    def __init__(self, reactor: Any, on_due: Callable[[Any], None]) -> None:
        self.reactor = reactor
        self.on_due = on_due
        self.at: dict[Any, float] = {}
        self._call: Any = None
        self._call_at = math.inf

    def start(self, key: Any, seconds: float) -> None:
        at = self.reactor.seconds() + seconds
        self.at[key] = at
        if at < self._call_at:
            self._schedule(at)

    def cancel(self, key: Any) -> None:
        self.at.pop(key, None)

    def clear(self) -> None:
        self.at.clear()
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        self._call_at = math.inf

    def _schedule(self, at: float) -> None:
        delay = max(0.0, at - self.reactor.seconds())
        if self._call is not None and self._call.active():
            self._call.reset(delay)
        else:
            self._call = self.reactor.callLater(delay, self._tick)
        self._call_at = at

    def _tick(self) -> None:
        self._call = None
        self._call_at = math.inf
        now = self.reactor.seconds()
        for at, key in sorted((at, key) for key, at in self.at.items() if at <= now):
            if self.at.get(key) == at:
                del self.at[key]
                self.on_due(key)
        if self.at:
            first = min(self.at.values())
            if first < self._call_at:
                self._schedule(first)


def count(channel: Any, exchange: Any) -> None:
    """The channel's counters and failure log for one finished exchange."""
    latency = exchange.latency_ms
    seconds = latency / 1000.0 if latency is not None and exchange.response is not None else None
    channel.stats.finished(exchange.outcome, exchange.message_type, seconds)
    if exchange.outcome not in ("ok", "nak", "fault"):
        channel.warn(exchange)


def submit_fast(channel: Any, exchange: Any) -> None:
    """Capture without waiting (fast mode): a failing writer is counted and logged, never raised."""
    writer = channel.writer
    if writer is None:
        return
    try:
        writer.submit(exchange)
    except Exception as exc:  # noqa: BLE001 - a closed writer must not kill the connection
        channel.store_errors += 1
        channel.log("error", f"capture failed: {exc}")
