"""`CaptureWriter`: the proxy's side of the store, a thread that commits exchanges off the reactor."""

from __future__ import annotations

import logging
import math
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.exchange import Exchange
from harness.store.backend import Store, StoreError
from harness.store.codec import _to_row, _Update
from harness.store.location import StoreLocation, parse_location
from harness.store.process import WriterProcess, ready_to_seal, writing

log = logging.getLogger("harness.store")

Callback = Callable[[int | BaseException], None]
_LOOK_AGAIN_S = 0.05
"""A store file found in place after a commit is not looked at again before a commit this soon after."""


@dataclass(slots=True)
class StoreHealth:
    """Whether the writer can record exchanges now, and if not, why (what /health and the proxy read)."""

    ok: bool = True
    reason: str | None = None
    since: float = field(default_factory=time.time)


def file_identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the file at path, None when there is none: a store deleted or replaced while
    open keeps taking writes into a file nobody will read again."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino
_Item = tuple[Exchange, "Callback | None", "Exchange | None"]


def _item(queued: tuple) -> _Item:
    """A queue entry (exchange, callback, submitted at, replaces) as a batch item."""
    return queued[0], queued[1], queued[3]


class CaptureWriter:
    """Writes exchanges on a thread of its own so the caller (the proxy's reactor) never waits on disk.

    Modes (the proxy's `capture:` setting; `off` means the proxy creates no writer at all):

    - ``durable``: synchronous=FULL, so every commit is fsynced (PostgreSQL: synchronous_commit on,
      the commit is flushed on the server). An exchange's callback runs only
      after the transaction holding it committed; the proxy relays the reply to the sender from that
      callback, so every exchange whose reply reached its sender is on disk. Exchanges already queued
      when a commit starts share it (group commit), which is what keeps throughput up under many
      connections. With `commit_delay_s` and a `siblings()` hint (how many exchanges are on their way,
      e.g. requests awaiting the upstream's reply), a commit first waits up to that long for them, so
      a few stop-and-wait connections share one fsync instead of paying one each; no hint, no wait.
    - ``fast``: synchronous=NORMAL (WAL: survives a process kill, may lose the last transactions on
      power loss; PostgreSQL: synchronous_commit off, the server's own group commit). Exchanges are
      gathered until the oldest has waited `window_s` (100 ms) or `max_batch` are queued, then
      committed together and their callbacks run. A crash loses at most the open group and the one
      being committed, always the most recent exchanges.

    Several writers (one per mode) may share a file: each transaction takes the write lock up front
    and waits for the other's (busy timeout 10 s).

    `path` is any store target (a SQLite file, a postgresql:// URL). A database server that goes away or
    turns read-only marks `health` down at once (a look while idle, every `check_interval_s`); probes
    bring it back up when it takes writes again.

    ``process=True`` runs the store's connection in a child process (`WriterProcess`): this thread only turns
    each batch into rows, sends them over a pipe and waits for the child's answer (ids or errors,
    sent after its COMMIT returned), so the caller's process spends about a microsecond per exchange
    and no per-row GIL hand-offs. The guarantees above are unchanged: a callback still runs only
    after the commit holding its exchange. If the child dies, every exchange not yet confirmed fails
    (its callback gets the error) and so does everything submitted later.

    `callback(id_or_exception)` runs on the writer thread: the new row id, or the exception that kept
    the exchange out of the store (errors are counted, never raised at the caller).

    Full queue policy: nothing is dropped. Above `high_water` pending exchanges the writer calls
    `on_pressure(True)` (on the submitting thread) so the proxy can stop reading from senders, and
    `on_pressure(False)` (on the writer thread) once the queue is back under half of it. Only if a
    caller ignores that and the queue reaches `hard_limit` does `submit` block until there is room.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        mode: str = "durable",
        *,
        window_s: float = 0.1,
        max_batch: int = 2000,
        high_water: int = 10_000,
        hard_limit: int | None = None,
        on_pressure: Callable[[bool], None] | None = None,
        process: bool = False,
        commit_delay_s: float = 0.0,
        siblings: Callable[[], int] | None = None,
        on_health: Callable[[StoreHealth], None] | None = None,
        check_interval_s: float = 0.5,
        quick_check: bool = False,
        instance: str | None = None,
        encryption: Any = None,
    ) -> None:
        if mode not in ("durable", "fast"):
            raise ValueError(
                f"capture mode {mode!r}: a writer runs in 'durable' or 'fast' mode ('off' means no writer)"
            )
        self.mode = mode
        self.location = location = parse_location(path)
        self.path: Path | str = location.path if location.path is not None else str(location.url)
        self.instance = instance
        """Tagged on every exchange written without one: the proxy instance, where several share a store."""
        self._synchronous = synchronous = "FULL" if mode == "durable" else "NORMAL"
        self._encryption = encryption
        """`crypto.KeySource` of the key bodies are sealed with; None: the environment's, if any."""
        self._store: Store | None = None
        self._child: WriterProcess | None = None
        if process:
            self._child = WriterProcess(location, synchronous, quick_check=quick_check, encryption=encryption)
        else:
            self._store = Store(
                location, synchronous=synchronous, check_same_thread=False, keys=_keys(encryption),
                **writing(location),
            )  # fmt: skip
            ready_to_seal(self._store)
            if quick_check:
                problem = self._store.check()
                if problem:
                    self._store.close()
                    raise StoreError(self._store.damaged(problem))
        self._identity = file_identity(location.path) if location.path is not None else None
        self.health = StoreHealth()
        self.on_health = on_health
        """Called on the writer thread whenever `health` changes."""
        self._check_interval_s = check_interval_s
        self._next_recovery = 0.0
        self.errors_by_channel: dict[str, int] = {}
        """Exchanges of each channel that could not be recorded."""
        self._window_s = window_s
        self._max_batch = max(1, max_batch)
        self._high_water = max(1, high_water)
        self._low_water = self._high_water // 2
        self._hard_limit = hard_limit if hard_limit is not None else 4 * self._high_water
        self._on_pressure = on_pressure
        self._commit_delay_s = commit_delay_s
        self.siblings = siblings
        """Durable: how many exchanges are on their way (e.g. requests awaiting the upstream's reply)."""
        self._looked_at = -math.inf
        """When the store file was last found to be the one being written (right after a commit)."""
        self._lingering = False
        self._wake_at = self._max_batch
        """Queue length at which `submit` wakes the writer thread (lower while a commit lingers)."""
        self._waiting = False
        """The writer thread is (about to be) waiting for a first exchange."""
        self._queue: deque[tuple[Exchange, Callback | None, float]] = deque()
        self._flush_to = 0  # flush() asks the fast window to close early up to this submission count
        self._cond = threading.Condition()
        self._hurry = threading.Event()
        self._submitted = 0
        self._done = 0
        self._closing = False
        self._closed = False
        self._saturated = False
        self.written = 0
        self.errors = 0
        self.commits = 0
        self.callback_errors = 0
        self.last_error: BaseException | None = None
        if location.remote:
            self._ping()  # a database down at start: the proxy starts, its durable channels refuse
        self._thread = threading.Thread(
            target=self._run, name=f"capture-writer:{_short(location)}", daemon=True
        )
        self._thread.start()

    def __enter__(self) -> CaptureWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pending(self) -> int:
        return self._submitted - self._done

    @property
    def saturated(self) -> bool:
        return self._saturated

    def stats(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "written": self.written,
            "pending": self.pending,
            "errors": self.errors,
            "commits": self.commits,
            "callback_errors": self.callback_errors,
            "saturated": self._saturated,
            "healthy": self.health.ok,
            "health_reason": self.health.reason,
        }

    def submit(
        self, ex: Exchange, callback: Callback | None = None, *, replaces: Exchange | None = None
    ) -> None:
        """Queue one exchange; returns at once (see the class docstring for the full-queue policy).

        `replaces`: an exchange submitted earlier that this one completes (an enhanced-mode exchange
        stored at its accept ACK): its row is updated in place, and `ex.id` becomes its id.
        """
        if self._closing:
            raise RuntimeError(f"capture writer for {self.path} is closed")
        queue = self._queue
        if len(queue) >= self._hard_limit:
            self._submit_full(ex, callback, replaces)
            return
        # The usual case takes no lock: a deque append is atomic, and the writer thread is only
        # woken when it may be waiting for this: idle (it says so before it looks at the queue, under
        # the lock, so either it sees this exchange or this call sees it waiting), a full batch, or the
        # exchanges a durable commit lingers for.
        item = (ex, callback, time.monotonic(), replaces)
        queue.append(item)
        self._submitted += 1
        n = len(queue)
        if self._closing:
            self._withdraw(item)
        if self._waiting or n >= self._wake_at:
            with self._cond:
                self._cond.notify_all()
                if len(queue) >= self._max_batch:
                    self._hurry.set()
        if n >= self._high_water and not self._saturated:
            with self._cond:
                pressure = not self._saturated and len(queue) >= self._high_water
                if pressure:
                    self._saturated = True
            if pressure and self._on_pressure is not None:
                self._on_pressure(True)

    def _submit_full(self, ex: Exchange, callback: Callback | None, replaces: Exchange | None) -> None:
        """A caller that ignored `on_pressure` up to `hard_limit`: wait for room (nothing is dropped)."""
        with self._cond:
            if self._closing:
                raise RuntimeError(f"capture writer for {self.path} is closed")
            while len(self._queue) >= self._hard_limit and not self._closing and self._thread.is_alive():
                self._cond.wait(0.05)
            self._queue.append((ex, callback, time.monotonic(), replaces))
            self._submitted += 1
            self._cond.notify_all()
            if len(self._queue) >= self._max_batch:
                self._hurry.set()

    def _withdraw(self, item: tuple) -> None:
        """`close()` began while `item` was being queued: unless the writer took it (then it is written),
        the caller hears the writer is closed, as if the append had come after."""
        with self._cond:
            try:
                self._queue.remove(item)
            except ValueError:
                return
            self._submitted -= 1
        raise RuntimeError(f"capture writer for {self.path} is closed")

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything submitted so far is committed (or failed); False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            target = self._submitted
            self._flush_to = max(self._flush_to, target)
            self._hurry.set()
            while self._done < target:
                if not self._thread.is_alive():
                    return False
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining if remaining is not None else 0.5)
            return True

    def close(self, timeout: float | None = None) -> None:
        """Commit what is queued, stop the thread and close the connection. Idempotent."""
        if self._closed:
            return
        with self._cond:
            self._closing = True
            self._hurry.set()
            self._cond.notify_all()
        self._thread.join(timeout)
        if not self._thread.is_alive():
            if self._store is not None:
                self._store.close()
            if self._child is not None:
                self._child.close()
            self._closed = True

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    self._waiting = True  # before the queue is looked at: see `submit`
                    while not self._queue and not self._closing:
                        if not self._cond.wait(self._check_interval_s):
                            break  # idle: look at the store's health below
                    self._waiting = False
                    if not self._queue:
                        if self._closing:
                            return
                        idle = True
                    else:
                        idle = False
                if idle:
                    self._check()
                    continue
                if self.mode == "fast":
                    self._gather()
                elif self._commit_delay_s > 0 and self.siblings is not None:
                    self._linger()
                with self._cond:
                    n = min(len(self._queue), self._max_batch)
                    batch = [_item(self._queue.popleft()) for _ in range(n)]
                self._write(batch)
        except BaseException as exc:  # a bug here must not leave callers waiting forever
            log.exception("capture writer for %s stopped", self.path)
            with self._cond:
                failed = [_item(item) for item in self._queue]
                self._queue.clear()
                self._closing = True
            self._finish(failed, [exc] * len(failed))

    def _linger(self) -> None:
        """Durable: when exchanges are on their way, wait for them up to `commit_delay_s` so they share
        this commit's fsync (PostgreSQL's commit_delay with commit_siblings). With few connections
        and an fsync slower than a round trip, fewer and fuller commits move more exchanges."""
        try:
            coming = int(self.siblings())
        except Exception:  # noqa: BLE001 - a broken hint only costs the wait
            return
        if coming <= 0:
            return
        deadline = time.monotonic() + self._commit_delay_s
        with self._cond:
            target = min(self._max_batch, len(self._queue) + coming)
            self._lingering = True
            self._wake_at = target
            try:
                while len(self._queue) < target and not self._closing and self._done >= self._flush_to:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return
                    self._cond.wait(remaining)
            finally:
                self._lingering = False
                self._wake_at = self._max_batch

    def _gather(self) -> None:
        """Fast mode: let the group grow until its oldest exchange has waited the window, a batch is
        full, or flush/close asks for the commit now."""
        while True:
            with self._cond:
                if (
                    self._closing
                    or len(self._queue) >= self._max_batch
                    or self._done < self._flush_to
                    or not self._queue
                ):
                    return
                remaining = self._queue[0][2] + self._window_s - time.monotonic()
                self._hurry.clear()
            if remaining <= 0:
                return
            self._hurry.wait(remaining)

    def _write(self, batch: list[_Item]) -> None:
        rows: list[tuple | BaseException] = []
        index = {id(ex): i for i, (ex, _, _) in enumerate(batch)}
        for ex, _, replaces in batch:
            if ex.proxy is None and self.instance is not None:
                ex.proxy = self.instance
            try:
                row = _to_row(ex)
            except (TypeError, ValueError, OverflowError) as exc:
                rows.append(exc)
                continue
            if replaces is not None:
                row = _Update(replaces.id, None if replaces.id is not None else index.get(id(replaces)), row)
            rows.append(row)
        results = self._commit(rows)
        stored = any(not isinstance(r, BaseException) for r in results)
        if stored:
            self.commits += 1
            self._set_health(True)
        elif any(isinstance(r, sqlite3.Error | StoreError) for r in results):
            first = next(r for r in results if isinstance(r, BaseException))
            self._set_health(False, f"exchanges cannot be recorded: {first}")
        self._finish(batch, results)

    def _commit(self, rows: list[tuple | BaseException]) -> list[int | BaseException]:
        """One batch into the store: restarting a writer process that died (and trying the batch again,
        without storing twice what its last transaction may have committed), and failing the batch
        when the file on disk is no longer the one being written."""
        # the look after the last commit still stands when it was a moment ago (one stat per commit)
        gone = self._replaced() if time.monotonic() - self._looked_at > _LOOK_AGAIN_S else None
        if gone:
            return [StoreError(gone)] * len(rows)
        if self._child is None:
            results = self._store.commit_rows(rows)
        else:
            # a child that died is noticed by the write itself (no wait4 per batch): it is restarted
            # and the batch written again below
            if self._child.broken is not None and not self._restart():
                return [StoreError(self.health.reason or "capture writer process is down")] * len(rows)
            results = self._child.write(rows)
            if self._child.broken and self._restart():
                results = self._child.write(rows, dedupe=True)
        gone = self._replaced()
        if gone:  # committed into a file that was deleted or replaced meanwhile: nobody will read it
            return [StoreError(gone)] * len(rows)
        self._looked_at = time.monotonic()
        return results

    def _replaced(self) -> str | None:
        if self.location.path is None or file_identity(self.location.path) == self._identity:
            return None
        reason = f"capture store {self.path} was deleted or replaced while the proxy was writing to it"
        self._set_health(False, reason)
        return reason

    def _restart(self) -> bool:
        """Start a new writer process (the last one died); False when the store cannot be opened."""
        dead = self._child
        reason = dead.broken or "capture writer process died"
        self._set_health(False, str(reason))
        log.error("capture writer for %s: %s; starting a new one", self.path, reason)
        dead.close(timeout=1.0)
        try:
            self._child = WriterProcess(self.location, self._synchronous, encryption=self._encryption)
        except Exception as exc:  # noqa: BLE001 - the store cannot be opened: stay down, try again later
            self._child = dead
            self._set_health(False, f"capture writer process cannot be restarted: {exc}")
            return False
        return True

    def _check(self) -> None:
        """While idle: notice a dead writer process or a replaced file at once, and recover by itself."""
        if self._replaced():
            if time.monotonic() >= self._next_recovery:
                self._next_recovery = time.monotonic() + 1.0
                self._reopen()
            return
        if self._child is not None and not self._child.alive:
            self._restart()
            return
        if not self.health.ok and time.monotonic() >= self._next_recovery:
            self._next_recovery = time.monotonic() + 1.0
            problem = self._child.probe() if self._child is not None else self._store.probe()
            if problem is None:
                self._set_health(True)
            else:
                self._set_health(False, f"exchanges cannot be recorded: {problem}")
        elif self.health.ok and self.location.remote:
            self._ping()

    def _ping(self) -> None:
        """A database server can go away (or turn read-only) while the writer is idle: look, so durable
        channels refuse new messages before forwarding them rather than after."""
        problem = self._child.ping() if self._child is not None else self._store.ping()
        if problem is not None:
            self._set_health(False, f"exchanges cannot be recorded: {problem}")

    def _reopen(self) -> None:
        """The store file was deleted or replaced: open (or create) the one at the path now."""
        try:
            if self._child is not None:
                child = WriterProcess(self.location, self._synchronous, encryption=self._encryption)
                self._child.close(timeout=1.0)
                self._child = child
            else:
                store = Store(
                    self.location, synchronous=self._synchronous, check_same_thread=False,
                    keys=_keys(self._encryption),
                )  # fmt: skip
                self._store.close()
                self._store = store
        except Exception as exc:  # noqa: BLE001 - stay down, try again later
            self._set_health(False, f"capture store {self.path} was deleted or replaced and cannot be "
                             f"reopened: {exc}")
            return
        self._identity = file_identity(self.location.path)
        log.error("capture store %s was deleted or replaced; writing to the file now at that path", self.path)
        self._set_health(True)

    def _set_health(self, ok: bool, reason: str | None = None) -> None:
        """Record the store's state; listeners hear of it when it flips, the first reason standing."""
        if self.health.ok == ok:
            return
        self.health = StoreHealth(ok, None if ok else reason)
        if ok:
            log.warning("capture store %s records exchanges again", self.path)
        else:
            log.error("capture store %s cannot record exchanges: %s", self.path, reason)
        if self.on_health is not None:
            try:
                self.on_health(self.health)
            except Exception:  # noqa: BLE001 - a broken listener must not stop the writer
                log.exception("store health listener failed")

    def _finish(self, batch: list[_Item], results: list[int | BaseException]) -> None:
        for (ex, callback, _), result in zip(batch, results, strict=True):
            if isinstance(result, int):
                ex.id = result
                self.written += 1
            else:
                self.errors += 1
                self.errors_by_channel[ex.channel] = self.errors_by_channel.get(ex.channel, 0) + 1
                self.last_error = result
                log.error("capture of %s exchange %s failed: %s", ex.channel, ex.control_id, result)
            if callback is not None:
                try:
                    callback(result)
                except Exception:
                    self.callback_errors += 1
                    log.exception("capture callback failed")
        relieved = False
        with self._cond:
            self._done += len(batch)
            if self._saturated and len(self._queue) <= self._low_water:
                self._saturated = False
                relieved = True
            self._cond.notify_all()
        if relieved and self._on_pressure is not None:
            self._on_pressure(False)


def _keys(encryption: Any) -> Any:
    from harness.store.crypto import Keyring

    return Keyring.from_sources([encryption]) if encryption is not None else None


def _short(location: StoreLocation) -> str:
    return location.path.name if location.path is not None else "postgresql"
