"""Real simulators for the certification tests, one per module, on loopback ports the children choose."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.childproc import Child
from tests.conftest import HARNESS, ROOT, Processes


class Servers:
    """Starts harness children (or a broken variant) and remembers their ports."""

    def __init__(self) -> None:
        self.processes = Processes()
        self.ports: dict[str, int] = {}

    def start(self, name: str, *args: str, module: str | None = None) -> int:
        if name not in self.ports:
            command = [sys.executable, "-m", module, *args] if module else [*HARNESS, *args]
            child = Child(self.processes.start(command))
            self.ports[name] = child.listening(timeout=60)
        return self.ports[name]

    def mock(self, kind: str, *extra: str) -> int:
        return self.start(f"{kind} {' '.join(extra)}", "mock", kind, "--listen", "127.0.0.1:0", *extra)

    def broken(self, variant: str) -> int:
        return self.start(variant, variant, "--listen", "127.0.0.1:0", module="tests.certify.broken")


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    found = Servers()
    try:
        yield found
    finally:
        found.processes.stop_all()


def certify(*args: str, timeout: float = 600) -> tuple[int, dict, str]:
    """`harness certify ARGS --json` as a child: exit code, the summary object, stderr."""
    proc = subprocess.run(
        [*HARNESS, "certify", *args, "--json"], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )
    summary = json.loads(proc.stdout) if proc.stdout.strip().startswith("{") else {}
    return proc.returncode, summary, proc.stderr


def report(summary: dict) -> dict:
    return json.loads(Path(summary["reports"]["json"]).read_text("utf-8"))
