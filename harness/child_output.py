"""The lines a child process prints, read by a thread as they come.

Waiting for a line such as `listening on HOST:PORT` must not stop the reading: a pipe nobody drains
fills up and then blocks the child mid-write. Used by `harness demo` for its children and by the tests.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time

LISTENING = re.compile(r"listening on (?:\[(?P<v6>[^\]]+)\]|(?P<v4>[^:\s]+)):(?P<port>\d+)")
"""The `listening on HOST:PORT` line the servers print once bound (HOST in brackets when IPv6)."""


class ChildExited(Exception):
    """The child ended (and its output with it) before the awaited line came."""

    def __init__(self, returncode: int | None, lines: list[str]) -> None:
        super().__init__(f"exited with {returncode}")
        self.returncode = returncode
        self.lines = lines


class OutputTimeout(TimeoutError):
    """The awaited line did not come in time; the child still runs."""


class ChildOutput:
    """Collects `proc.stdout` (text mode) line by line, without the newline, until it closes."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, pattern: re.Pattern[str] | str, timeout: float, count: int = 1) -> re.Match[str]:
        """The count-th line matching pattern, once it has come.

        Raises ChildExited when the child ended without printing it, OutputTimeout after timeout seconds.
        """
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [m for m in map(rx.search, self.lines) if m]
                if len(found) >= count:
                    return found[count - 1]
                if self.proc.poll() is not None and not self._reader.is_alive():
                    raise ChildExited(self.proc.returncode, list(self.lines))
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise OutputTimeout(f"no line matching {rx.pattern!r} in {timeout:g} s")
                self._changed.wait(min(remaining, 0.2))

    def join(self, timeout: float) -> None:
        """Wait for the reader to reach the end of the output (after the child has ended)."""
        self._reader.join(timeout=timeout)
