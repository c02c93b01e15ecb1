"""`harness mock mllp` as a child process for tests: start it on port 0, read its port and log."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time

_LISTENING = re.compile(r"listening on (?:\[(?P<v6>[^\]]+)\]|(?P<v4>[^:\s]+)):(?P<port>\d+)")


class MockMLLP:
    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.port = int(self.wait_for(_LISTENING).group("port"))

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for(
        self, pattern: re.Pattern[str] | str, timeout: float = 20.0, count: int = 1
    ) -> re.Match[str]:
        """The count-th log line matching pattern (waits for it; fails if the process exits first)."""
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [m for m in map(rx.search, self.lines) if m]
                if len(found) >= count:
                    return found[count - 1]
                if self.proc.poll() is not None and not self._reader.is_alive():
                    raise AssertionError(f"mock exited ({self.proc.returncode}): {self.lines}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no log line matching {rx.pattern!r} in {timeout}s: {self.lines}")
                self._changed.wait(min(remaining, 0.2))

    def messages(self) -> list[str]:
        return [line for line in self.lines if line.startswith("#")]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code


def start_mock(processes, *args: str, host: str = "127.0.0.1") -> MockMLLP:
    shown = f"[{host}]" if ":" in host else host
    return MockMLLP(processes.harness("mock", "mllp", "--listen", f"{shown}:0", *args))
