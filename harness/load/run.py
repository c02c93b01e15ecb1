"""`harness load`'s side of a run: locust as child processes, progress on the terminal, the results.

Locust never runs in this process (gevent's monkey-patching and Twisted do not mix, and this process
may read the capture store); it runs the plan as children: one locust process, or a master with
`workers` local worker processes (locust's own master/worker mode), or a master that waits for workers
on other machines. Each child's output goes to a log file in the run's folder; the plugin inside the
master writes one progress line a second and the results JSON at the end. Ctrl-C (or SIGTERM) stops
the children cleanly: the results of the part that ran are still written and reported.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
KILL_GRACE_S = 20.0


class RunError(RuntimeError):
    """The run could not happen (locust missing, a child crashed, no results); exit code 2."""


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class Launch:
    """How to start locust for a plan (see `command_lines`)."""

    plan_path: Path
    folder: Path
    workers: int = 0
    """Local worker processes; 0 runs a single locust process."""
    remote_workers: int = 0
    """Workers that connect from other machines (`locust --worker --master-host ...`)."""
    master_bind: str = "127.0.0.1"
    master_port: int = 0
    web: bool = False
    web_host: str = "127.0.0.1"
    web_port: int = 8089
    stop_timeout_s: float = 12.0
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def distributed(self) -> bool:
        return self.workers > 0 or self.remote_workers > 0

    def command_lines(self) -> tuple[list[str], list[list[str]]]:
        """The master's (or the only process's) command line and each local worker's."""
        base = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE)]
        master = [
            *base,
            "--plan", str(self.plan_path),
            "--stop-timeout", f"{self.stop_timeout_s:g}",
            "--csv", str(self.folder / "locust"),
            "--loglevel", "INFO",
        ]  # fmt: skip
        if self.web:
            master += ["--autostart", "--web-host", self.web_host, "--web-port", str(self.web_port)]
        else:
            master += ["--headless", "--only-summary"]
        workers: list[list[str]] = []
        if self.distributed:
            if not self.master_port:
                self.master_port = _free_port(self.master_bind)
            expect = self.workers + self.remote_workers
            master += [
                "--master", "--expect-workers", str(expect), "--expect-workers-max-wait", "60",
                "--master-bind-host", self.master_bind, "--master-bind-port", str(self.master_port),
            ]  # fmt: skip
            connect = "127.0.0.1" if self.master_bind in ("0.0.0.0", "::", "") else self.master_bind
            for _ in range(self.workers):
                workers.append(
                    [
                        *base,
                        "--worker",
                        "--master-host",
                        connect,
                        "--master-port",
                        str(self.master_port),
                        "--loglevel",
                        "WARNING",
                    ]  # fmt: skip
                )
        return master, workers


class Children:
    """The locust processes of one run, each in its own session with its output in a log file."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.folder = folder
        self.env = env
        self.procs: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, args: list[str]) -> subprocess.Popen:
        log = open(self.folder / f"{name}.log", "ab")  # noqa: SIM115 - the child writes to it
        try:
            proc = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, env=self.env, cwd=os.getcwd(),
            )  # fmt: skip
        finally:
            log.close()
        self.procs.append((name, proc))
        return proc

    def signal_all(self, sig: int) -> None:
        for _, proc in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    pass

    def wait_all(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for _, proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass

    def stop(self, timeout: float) -> None:
        """SIGTERM every child still running, then SIGKILL what lingers past `timeout`."""
        self.signal_all(signal.SIGTERM)
        self.wait_all(timeout)
        self.signal_all(signal.SIGKILL)
        self.wait_all(5.0)

    def tail(self, name: str, lines: int = 12) -> str:
        try:
            text = (self.folder / f"{name}.log").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _last_progress(path: Path, offset: int) -> tuple[dict[str, Any] | None, int]:
    try:
        with open(path, encoding="utf-8") as fh:
            fh.seek(offset)
            chunk = fh.read()
            offset = fh.tell()
    except OSError:
        return None, offset
    last = None
    for line in chunk.splitlines():
        try:
            last = json.loads(line)
        except ValueError:
            continue
    return last, offset


def progress_line(p: dict[str, Any]) -> str:
    t, d = p.get("t", 0), p.get("duration", 0)
    phase = " draining" if p.get("phase") == "drain" else ""
    p95 = p.get("p95_ms")
    text = (
        f"[{t:5.0f}s/{d:.0f}s{phase}] users {p.get('users', 0):>4}  rate {p.get('rate', 0):7.1f}/s"
        f" (target {p.get('target', 0):.1f})  p95 {'-' if p95 is None else f'{p95:g} ms'}"
        f"  requests {p.get('requests', 0)}  failures {p.get('failures', 0)}"
    )
    if "backlog" in p:
        text += f"  backlog {p['backlog']}"
    return text


def run(launch: Launch, results_path: Path, progress_path: Path, show: Callable[[str, bool], None]) -> dict:
    """Start locust, show progress (`show(text, final)`), wait for the end; the results JSON.

    Raises RunError when no results came (the log tail says why)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", **launch.extra_env)
    children = Children(launch.folder, env)
    master_args, worker_args = launch.command_lines()
    (launch.folder / "command.txt").write_text(
        "\n".join(" ".join(a) for a in [master_args, *worker_args]) + "\n", encoding="utf-8"
    )
    def on_signal(signum, _frame) -> None:
        master = children.procs[0][1] if children.procs else None
        if master is not None and master.poll() is None:
            os.kill(master.pid, signal.SIGINT)  # locust's Ctrl-C: it writes what it has, then exits

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        master = children.start(
            "locust-master" if worker_args or launch.remote_workers else "locust", master_args
        )
        for i, args in enumerate(worker_args):
            children.start(f"locust-worker-{i + 1}", args)
        offset = 0
        last = None
        finished_shown = False
        while master.poll() is None:
            time.sleep(0.5)
            if launch.web and not finished_shown and results_path.is_file():
                finished_shown = True
                show("the run has ended and its results are written; the web UI stays up until Ctrl-C", True)
            p, offset = _last_progress(progress_path, offset)
            if p is not None:
                last = p
                show(progress_line(p), False)
            for name, proc in children.procs[1:]:
                if proc.poll() is not None and proc.returncode not in (0, None) and master.poll() is None:
                    show(f"{name} exited with {proc.returncode}: {children.tail(name, 3)}", True)
        if last is not None:
            show(progress_line(last), True)
    finally:
        children.stop(KILL_GRACE_S)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    name = children.procs[0][0]
    if not results_path.is_file():
        raise RunError(
            f"locust ended ({master.returncode}) without results; "
            f"{launch.folder / (name + '.log')} ends with:\n" + children.tail(name)
        )
    results = json.loads(results_path.read_text(encoding="utf-8"))
    results["locust_exit_code"] = master.returncode
    return results  # stopped before the end: the plugin wrote `interrupted` (a finished web run is not)
