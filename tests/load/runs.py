"""Running `harness load` and its simulators in the load tests: children, summaries, small profiles."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from tests.childproc import Child
from tests.processes import HARNESS, ROOT, Processes

LOAD_TIMEOUT_S = 180


def start_mock(procs: Processes, kind: str, *args: str) -> int:
    child = Child(procs.harness("mock", kind, "--listen", "127.0.0.1:0", *args))
    return child.listening(timeout=60)


def load(*args: str, cwd: Path = ROOT, timeout: float = LOAD_TIMEOUT_S) -> subprocess.CompletedProcess:
    """`harness load ARGS` as a child; its stdout, stderr and exit code."""
    return subprocess.run(
        [*HARNESS, "load", *args], capture_output=True, text=True, cwd=cwd, timeout=timeout,
        env={**__import__("os").environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip


def summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text(encoding="utf-8"))


def write_profile(folder: Path, name: str, messages: dict[str, str], **top) -> Path:
    """A one-kind MLLP profile (constant shape unless given) over fixture templates."""
    fixtures = ROOT / "fixtures" / "hl7v2"
    data = {
        "name": name,
        "shape": "constant",
        "duration": "3s",
        "model": "open",
        "rate": 20,
        "concurrency": 8,
        "traffic": {"mllp": {"messages": {t: {"template": str(fixtures / f)} for t, f in messages.items()}}},
        **top,
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path
