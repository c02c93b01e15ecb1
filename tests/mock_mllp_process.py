"""`harness mock mllp` as a child process for tests: start it on port 0, read its port and log."""

from __future__ import annotations

import subprocess

from tests.childproc import Child


class MockMLLP(Child):
    def __init__(self, proc: subprocess.Popen) -> None:
        super().__init__(proc)
        self.port = self.listening()

    def messages(self) -> list[str]:
        return [line for line in self.lines if line.startswith("#")]


def start_mock(processes, *args: str, host: str = "127.0.0.1") -> MockMLLP:
    shown = f"[{host}]" if ":" in host else host
    return MockMLLP(processes.harness("mock", "mllp", "--listen", f"{shown}:0", *args))
