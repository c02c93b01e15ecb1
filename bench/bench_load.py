"""Load generation: messages per second the locust MLLP user makes against `harness mock mllp`.

Measured in one run against one `harness mock mllp` (Twisted) on loopback, the same message (a 0.5 KB
ADT^A08 from fixtures/, a new control id and patient each time) and the same number of connections:

- baseline: a plain asyncio sender (the lower bound of per-message work in Python: write a frame,
  read until the end block, check MSA-2), one process;
- the locust MLLP user (harness.load.users.MLLPUser: template filling, the ACK read through the
  shared ACK model, a request event per message, the harness recorder), closed model with no think
  time, in one locust process;
- the same with `--workers 2` (a master and two worker processes, locust's own distribution).

Each prints msg/s over wall time and msg per CPU-second of the load generator (its processes' user +
system time, from the kernel's accounting of reaped children): on a machine whose cores are shared with
the target and other work, msg per CPU-second is the per-core capacity, and wall msg/s shows what the
machine as a whole allowed. Run: `.venv/bin/python bench/bench_load.py [--seconds 15] [--users 32]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from processes import stop

from harness.load.hl7v2_factory import Hl7v2Factory, Template
from harness.load.ids import ControlIds
from harness.load.profile import load_profile, resolve
from harness.load.run import Launch, run

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "fixtures" / "hl7v2" / "adt_a08_update_lf.hl7"


def start_mock(log: Path) -> tuple[subprocess.Popen, int]:
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "harness", "mock", "mllp", "--listen", "127.0.0.1:0"],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        first = log.read_text().split("\n", 1)[0]
        if "listening on" in first:
            return proc, int(first.rsplit(":", 1)[1])
        if proc.poll() is not None:
            raise RuntimeError(f"harness mock mllp exited: {log.read_text()}")
        time.sleep(0.1)
    raise TimeoutError("harness mock mllp did not start")


def cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def locust_cpu() -> float:
    """CPU seconds so far of this process's locust children (master and workers), from /proc."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == os.getpid() and b"locust" in cmdline:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


class Steady(threading.Thread):
    """Samples requests (from the progress lines) and locust's CPU from 3 s into the run to 1 s before
    its end: the steady state, without start-up (imports, spawning) and the drain."""

    def __init__(self, progress: Path, seconds: float) -> None:
        super().__init__(daemon=True)
        self.progress, self.seconds = progress, seconds
        self.samples: list[tuple[float, int, float]] = []

    def requests(self) -> int | None:
        try:
            lines = self.progress.read_text().splitlines()
        except OSError:
            return None
        return json.loads(lines[-1])["requests"] if lines else None

    def run(self) -> None:
        while self.requests() is None:
            time.sleep(0.05)
        start = time.monotonic()
        for at in (3.0, self.seconds - 1.0):
            time.sleep(max(0.0, start + at - time.monotonic()))
            self.samples.append((time.monotonic(), self.requests() or 0, locust_cpu()))

    def rates(self) -> tuple[float, float]:
        (t1, r1, c1), (t2, r2, c2) = self.samples
        return (r2 - r1) / (t2 - t1), (r2 - r1) / max(1e-9, c2 - c1)


async def asyncio_sender(port: int, users: int, seconds: float) -> int:
    template = Template(TEMPLATE.read_bytes())
    factory = Hl7v2Factory({template.name: (template, 1.0)}, ControlIds("BASE"), seed=1)
    deadline = time.monotonic() + seconds
    counts = [0] * users

    async def one(i: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while time.monotonic() < deadline:
            message = factory.make()
            writer.write(b"\x0b" + message.payload + b"\x1c\r")
            reply = await reader.readuntil(b"\x1c\r")
            if message.control_id.encode() not in reply:
                raise RuntimeError(f"ACK for another message: {reply[:120]!r}")
            counts[i] += 1
        writer.close()

    await asyncio.gather(*(one(i) for i in range(users)))
    return sum(counts)


def baseline(port: int, users: int, seconds: float) -> dict:
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.monotonic()
    sent = asyncio.run(asyncio_sender(port, users, seconds))
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"messages": sent, "wall_s": wall, "cpu_s": cpu}


def locust_run(port: int, users: int, seconds: float, workers: int, folder: Path) -> dict:
    data, source = load_profile(ROOT / "bench" / "load-bench.yaml")
    plan = resolve(data, source, targets={"mllp": f"127.0.0.1:{port}"}, users=users, duration=seconds,
                   workers=max(1, workers))  # fmt: skip
    out = folder / f"workers-{workers}"
    out.mkdir(parents=True, exist_ok=True)
    plan["results"] = str(out / "results.json")
    plan["progress"] = str(out / "progress.jsonl")
    (out / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
    cpu_before = cpu_children()
    steady = Steady(Path(plan["progress"]), seconds)
    steady.start()
    results = run(Launch(out / "plan.json", out, workers=workers, stop_timeout_s=plan["stop_timeout_s"]),
                  Path(plan["progress"]).with_name("results.json"), Path(plan["progress"]),
                  lambda text, final: None)  # fmt: skip
    steady.join(timeout=5)
    cpu = cpu_children() - cpu_before
    rate, per_cpu = steady.rates()
    return {"messages": results["requests"], "failures": results["failures"], "wall_s": seconds, "cpu_s": cpu,
            "p95_ms": results["p95_ms"], "steady_rate": rate, "steady_per_cpu": per_cpu}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--users", type=int, default=32, help="connections (asyncio tasks, locust users)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        mock, port = start_mock(Path(tmp) / "mock.log")
        try:
            base = baseline(port, args.users, args.seconds)
            rows.append(("asyncio sender (baseline), 1 process", base))
            rows.append(
                ("locust MLLP user, 1 process", locust_run(port, args.users, args.seconds, 0, Path(tmp)))
            )
            rows.append(("locust MLLP user, master + 2 workers",
                         locust_run(port, args.users, args.seconds, 2, Path(tmp))))  # fmt: skip
        finally:
            stop(mock)
    print(f"{args.users} connections, {args.seconds:g} s each, against harness mock mllp on loopback "
          f"({os.cpu_count()} CPUs)")  # fmt: skip
    print(
        "steady state: from 3 s into a run to 1 s before its end (start-up and drain left out);"
    )
    print("whole run: every message over the duration, CPU of every process of the run including start-up")
    head = (
        f"{'run':<38} {'steady msg/s':>12} {'msg/CPU-s':>10} {'x base':>7} {'whole msg/s':>11} {'CPU s':>6}"
    )
    print(head)
    base = rows[0][1]
    base_rate = base["messages"] / base["wall_s"]
    base_cpu = base["messages"] / base["cpu_s"]
    for name, r in rows:
        rate = r.get("steady_rate", r["messages"] / r["wall_s"])
        per_cpu = r.get("steady_per_cpu", r["messages"] / r["cpu_s"])
        print(f"{name:<38} {rate:>12.0f} {per_cpu:>10.0f} {rate / base_rate:>7.2f} "
              f"{r['messages'] / r['wall_s']:>11.0f} {r['cpu_s']:>6.1f}")  # fmt: skip
        if r.get("failures"):
            print(f"  {r['failures']} failures")
    one, two = rows[1][1], rows[2][1]
    print(f"baseline per CPU-second: {base_cpu:.0f} msg (its rate is the mock's ceiling when CPU/s < 1)")
    print(
        f"two workers / one (steady msg/s): {two['steady_rate'] / one['steady_rate']:.2f} x; "
        f"per CPU-second {two['steady_per_cpu']:.0f} vs {one['steady_per_cpu']:.0f}"
    )


if __name__ == "__main__":
    main()
