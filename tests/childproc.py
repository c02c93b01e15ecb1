"""Test children whose output a thread keeps draining: wait for a log line (e.g. the port from
`listening on HOST:PORT`) without leaving a pipe to fill up and block the child."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from typing import Any

from harness.child_output import LISTENING, ChildExited, ChildOutput, OutputTimeout


class Child:
    """A child started by the `processes` fixture (stdout a text pipe), its lines collected as they come."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.output = ChildOutput(proc)
        self.lines = self.output.lines

    def wait_for(
        self, pattern: re.Pattern[str] | str, timeout: float = 20.0, count: int = 1
    ) -> re.Match[str]:
        """The count-th log line matching pattern (waits for it; fails if the process exits first)."""
        try:
            return self.output.wait_for(pattern, timeout, count)
        except ChildExited as exc:
            raise AssertionError(f"child exited ({exc.returncode}): {exc.lines}") from None
        except OutputTimeout as exc:
            raise AssertionError(f"{exc}: {self.lines}") from None

    def listening(self, pattern: re.Pattern[str] | str = LISTENING, timeout: float = 20.0) -> int:
        """The port of the child's `listening on HOST:PORT` line (group `port`, else group 1)."""
        m = self.wait_for(pattern, timeout)
        return int(m.group("port") if "port" in m.re.groupindex else m.group(1))

    def text(self) -> str:
        """Everything printed so far (all of it once stop() returned)."""
        return "".join(line + "\n" for line in self.lines)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        """Signal the child's process group, wait for it and for the end of its output; the exit code."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
        code = self.proc.wait(timeout=timeout)
        self.output.join(timeout=5)
        return code


def start_listening(processes: Any, *args: str, **kwargs: Any) -> tuple[Child, int]:
    """`python -m harness ARGS` under the `processes` fixture; the child and the port it printed."""
    child = Child(processes.harness(*args, **kwargs))
    return child, child.listening()
