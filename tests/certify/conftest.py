"""Real simulators for the certification tests, started once and shared, on loopback ports the children
choose (every suite names its records with identifiers of its own, so runs do not collide)."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.childproc import Child
from tests.processes import HARNESS, ROOT, Processes


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


def certify(*args: str) -> tuple[int, dict, str]:
    """`harness certify ARGS --json` run in this process (the targets are real processes on real sockets):
    exit code, the summary object, stderr. test_cli.py runs the command as a child too."""
    from typer.testing import CliRunner

    from harness.cli import app

    with contextlib.chdir(ROOT):
        result = CliRunner().invoke(app, ["certify", *args, "--json"])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    summary = json.loads(result.stdout) if result.stdout.strip().startswith("{") else {}
    return result.exit_code, summary, result.stderr


def report(summary: dict) -> dict:
    return json.loads(Path(summary["reports"]["json"]).read_text("utf-8"))
