"""Concurrency that keeps order per key (sans-IO dispatcher + a thread-pool shell).

One patient's messages (same ordering key, PID-3 by default) must reach the target in their captured
order, each only after the previous one got its reply; different patients go in parallel. The
dispatcher decides what may start; `run_ordered` is the only part that knows about threads.
A message without a key (no PID-3) depends on nothing and runs as soon as a slot is free.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass(slots=True)
class _Entry(Generic[T]):
    seq: int
    key: Hashable
    item: T


@dataclass(slots=True)
class Ticket(Generic[T]):
    """An item handed out to a worker; give it back with `OrderedDispatcher.done`."""

    seq: int
    key: Hashable
    item: T = field(repr=False)


class OrderedDispatcher(Generic[T]):
    """Hands out items so that at most `concurrency` run at once and items of one key never overlap.

    Among startable items the earliest pushed goes first, so with one key per item this is plain
    FIFO and with one key for all items it is strictly sequential.
    """

    def __init__(self, concurrency: int) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency {concurrency}: must be at least 1")
        self.concurrency = concurrency
        self._seq = 0
        self._waiting: dict[Hashable, deque[_Entry[T]]] = {}
        self._ready: list[tuple[int, Hashable]] = []  # heap of (seq of the key's head, key)
        self._busy: set[Hashable] = set()
        self._running = 0
        self._pending = 0

    @property
    def running(self) -> int:
        return self._running

    @property
    def pending(self) -> int:
        """Items pushed and not yet handed out."""
        return self._pending

    def push(self, item: T, key: Hashable | None) -> None:
        seq = self._seq
        self._seq += 1
        if key is None:
            key = ("\0unkeyed", seq)
        entry = _Entry(seq, key, item)
        queue = self._waiting.get(key)
        if queue is None:
            queue = self._waiting[key] = deque()
        queue.append(entry)
        self._pending += 1
        if len(queue) == 1 and key not in self._busy:
            heapq.heappush(self._ready, (seq, key))

    def next(self) -> Ticket[T] | None:
        """The next item that may start now, or None (all slots busy or nothing startable)."""
        if self._running >= self.concurrency or not self._ready:
            return None
        _, key = heapq.heappop(self._ready)
        queue = self._waiting[key]
        entry = queue.popleft()
        if not queue:
            del self._waiting[key]
        self._busy.add(key)
        self._running += 1
        self._pending -= 1
        return Ticket(entry.seq, key, entry.item)

    def done(self, ticket: Ticket[T]) -> None:
        """The item finished (reply, timeout or error): its key's next item becomes startable."""
        if ticket.key not in self._busy:
            raise ValueError(f"item {ticket.seq} was not running")
        self._busy.discard(ticket.key)
        self._running -= 1
        queue = self._waiting.get(ticket.key)
        if queue:
            heapq.heappush(self._ready, (queue[0].seq, ticket.key))

    def idle(self) -> bool:
        return self._running == 0 and self._pending == 0


def run_ordered(
    items: Iterable[tuple[Hashable | None, T]],
    work: Callable[[T], R],
    *,
    concurrency: int,
    on_done: Callable[[T, R | None, BaseException | None], None] | None = None,
    due: Callable[[T], float | None] | None = None,
    max_pending: int = 2000,
    stop: threading.Event | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Run `work(item)` on a pool of `concurrency` threads, keeping order per key.

    `items` yields (key, item) in send order; `due(item)` gives the offset in seconds from the start
    before which the item is not released (pacing), None for now. `on_done(item, result, error)`
    runs on the worker thread right after the item finished, before its key's next item starts.
    At most `max_pending` items are read ahead, so a long selection is streamed, not loaded whole.
    Setting `stop` ends the run after the items already started.
    """
    dispatcher: OrderedDispatcher[T] = OrderedDispatcher(concurrency)
    cond = threading.Condition()
    feeding_done = False
    failure: list[BaseException] = []
    stop = stop or threading.Event()

    def worker() -> None:
        while True:
            with cond:
                while True:
                    ticket = dispatcher.next() if not stop.is_set() else None
                    if ticket is not None:
                        break
                    if (
                        (feeding_done or stop.is_set())
                        and dispatcher.running == 0
                        and (dispatcher.pending == 0 or stop.is_set())
                    ):
                        cond.notify_all()
                        return
                    cond.wait()
            result: Any = None
            error: BaseException | None = None
            try:
                result = work(ticket.item)
            except BaseException as exc:  # noqa: BLE001 - reported to on_done, never lost
                error = exc
            try:
                if on_done is not None:
                    on_done(ticket.item, result, error)
            except BaseException as exc:  # noqa: BLE001
                failure.append(exc)
                stop.set()
            finally:
                with cond:
                    dispatcher.done(ticket)
                    cond.notify_all()

    threads = [threading.Thread(target=worker, name=f"replay-{i}", daemon=True) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    start = clock()
    try:
        for key, item in items:
            if stop.is_set():
                break
            offset = due(item) if due is not None else None
            if offset is not None:
                while not stop.is_set():
                    wait = start + offset - clock()
                    if wait <= 0:
                        break
                    stop.wait(min(wait, 0.5))
            with cond:
                while dispatcher.pending >= max_pending and not stop.is_set():
                    cond.wait(0.5)
                dispatcher.push(item, key)
                cond.notify_all()
    except BaseException:
        stop.set()
        raise
    finally:
        with cond:
            feeding_done = True
            cond.notify_all()
        for thread in threads:
            thread.join()
    if failure:
        raise failure[0]
