"""What every `harness demo` step shares: the context, the child processes, the output folder."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from harness.child_output import LISTENING, ChildExited, ChildOutput, OutputTimeout


class DemoFailure(Exception):
    """A step could not do its job; the message says what and why."""


class Child:
    """A `harness ...` child process in its own process group, its output collected by a thread."""

    def __init__(self, name: str, args: list[str]) -> None:
        self.name = name
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "harness", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        self.output = ChildOutput(self.proc)
        self.lines = self.output.lines

    def wait_for(self, pattern: re.Pattern[str], timeout: float) -> re.Match[str]:
        try:
            return self.output.wait_for(pattern, timeout)
        except ChildExited as exc:
            raise DemoFailure(
                f"{self.name} exited with {exc.returncode}: " + " | ".join(exc.lines[-5:])
            ) from None
        except OutputTimeout:
            raise DemoFailure(f"{self.name} did not start within {timeout:g} s") from None

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM the group, then SIGKILL if it lingers; returns the exit code."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if self.proc.poll() is not None:
                break
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                continue
        self.proc.wait()
        self.output.join(timeout=2)
        if self.proc.stdout:
            self.proc.stdout.close()
        return self.proc.returncode


@dataclass
class DemoContext:
    fixtures: Path
    echo: Callable[[str], None]
    timeout: float = 10.0
    target: tuple[str, int] | None = None  # where senders send; each step in the chain may move it
    children: dict[str, Child] = field(default_factory=dict)
    results: list = field(default_factory=list)  # harness.send.Sent

    def start_child(self, name: str, args: list[str], startup_timeout: float = 30.0) -> tuple[str, int]:
        child = Child(name, args)
        self.children[name] = child
        m = child.wait_for(LISTENING, startup_timeout)
        return (m.group("v6") or m.group("v4")), int(m.group("port"))

    def stop_children(self) -> None:
        for child in reversed(list(self.children.values())):
            child.stop()


class Step(Protocol):
    name: str

    def run(self, ctx: DemoContext) -> None: ...


State = TypeVar("State")


class SharedStep(Generic[State]):
    """A step of a group that shares one state object (its ports, store, what it sent) with the others."""

    def __init__(self, state: State) -> None:
        self.state = state


def shown(path: Path | str) -> str:
    """A path as the user can type it: relative to the working directory when it is below it."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def run_harness(args: list[str], timeout: float, env: dict[str, str] | None = None) -> str:
    """Run `harness ARGS` and return its output; a failure is a DemoFailure with that output."""
    proc = subprocess.run(
        [sys.executable, "-m", "harness", *args],
        capture_output=True,
        text=True,
        timeout=max(30.0, timeout * 3),
        env={**os.environ, **(env or {})},
    )
    if proc.returncode != 0:
        raise DemoFailure(f"harness {' '.join(args[:2])} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout
