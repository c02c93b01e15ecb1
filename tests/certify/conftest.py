"""Real simulators for the certification tests, started once and shared, on loopback ports the children
choose (every suite names its records with identifiers of its own, so runs do not collide)."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from tests.childproc import Child
from tests.processes import HARNESS, Processes


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


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    found = Servers()
    try:
        yield found
    finally:
        found.processes.stop_all()
