"""Child processes for tests: started in their own process group, every one killed at teardown."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HARNESS = [sys.executable, "-m", "harness"]


def _default_signals() -> None:
    """In the child before exec: SIGINT and SIGTERM at their defaults and nothing blocked, whatever the
    test process inherited or set (a parent that ignores SIGINT, as a shell does for background jobs,
    would make a child's Ctrl-C handling untestable)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


class Processes:
    """Starts child processes in their own process group and kills every one at teardown."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def start(self, args: list[str], **kwargs) -> subprocess.Popen:
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.STDOUT)
        kwargs.setdefault("text", True)
        kwargs.setdefault("cwd", ROOT)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.update(kwargs.pop("env", {}) or {})
        kwargs.setdefault("preexec_fn", _default_signals)
        proc = subprocess.Popen(args, start_new_session=True, env=env, **kwargs)
        self.procs.append(proc)
        return proc

    def harness(self, *args: str, **kwargs) -> subprocess.Popen:
        return self.start([*HARNESS, *args], **kwargs)

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 5
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
            for stream in (proc.stdout, proc.stderr):
                if stream:
                    stream.close()
