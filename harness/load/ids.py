"""Unique identifiers for generated traffic: HL7 v2 control ids and medical-insurance msgids.

A run has a short random tag; each locust worker adds its index; a process-wide counter does the
rest, so no two messages of a run (or of two runs) share a control id, whatever the number of users
and workers, and a capture of the run can be told apart from everything else by that prefix.

The medical-insurance `msgid` has a fixed shape, `fixmedins_code` + ``yyyyMMddHHmmss`` + a 4-digit
serial: at most 10,000 a second for one institution. Workers split the serials of each second
(worker i of n takes i, i + n, ...); a worker that uses up its share within a second moves its msgid
time on to the next second, so msgids stay unique and their time runs a little ahead of the clock only
above that rate (the interface's own limit, not this tool's).
"""

from __future__ import annotations

import itertools
import secrets
import string
import time
from collections.abc import Callable
from datetime import datetime

__all__ = ["ControlIds", "MsgIds", "new_run_tag"]

_ALPHABET = string.digits + string.ascii_uppercase


def _base36(n: int, width: int) -> str:
    out = []
    for _ in range(width):
        n, r = divmod(n, 36)
        out.append(_ALPHABET[r])
    return "".join(reversed(out))


def new_run_tag() -> str:
    """Four random base-36 characters naming one run."""
    return _base36(secrets.randbelow(36**4), 4)


class ControlIds:
    """``L`` + run tag + worker (2 base-36 chars) + a 9-digit counter: 16 characters, under MSH-10's 20."""

    def __init__(self, tag: str, worker: int = 0) -> None:
        self.prefix = f"L{tag}{_base36(worker, 2)}"
        self._counter = itertools.count(1)

    def next(self) -> str:
        return f"{self.prefix}{next(self._counter):09d}"


class MsgIds:
    """msgids for one institution, unique across `workers` processes (see the module docstring)."""

    SERIALS = 10_000

    def __init__(
        self, fixmedins_code: str, worker: int = 0, workers: int = 1, clock: Callable[[], float] = time.time
    ) -> None:
        if not 0 <= worker < workers <= self.SERIALS:
            raise ValueError(f"worker {worker} of {workers}: expected 0 <= worker < workers <= 10000")
        self.code = fixmedins_code
        self.worker = worker
        self.workers = workers
        self.clock = clock
        self._second = 0
        self._used = 0
        self.ran_ahead = 0
        """How many msgids were given a time after the clock's (this worker's share was used up)."""

    def next(self) -> str:
        now = int(self.clock())
        if now > self._second:
            self._second, self._used = now, 0
        serial = self._used * self.workers + self.worker
        if serial >= self.SERIALS:
            self._second += 1
            self._used = 0
            serial = self.worker
        if self._second > now:
            self.ran_ahead += 1
        self._used += 1
        stamp = datetime.fromtimestamp(self._second).strftime("%Y%m%d%H%M%S")
        return f"{self.code}{stamp}{serial:04d}"
