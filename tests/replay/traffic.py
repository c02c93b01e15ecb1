"""Replay test support: ADT messages for a few patients, a `harness mock mllp` child, and capture stores
made by a real `harness proxy` in front of it."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

from tests import messages


def adt(i: int, patient: str, *, ts: str = "20261124233000", trigger: str = "A08") -> bytes:
    return messages.adt(
        f"MSG{i:05d}",
        trigger=trigger,
        message_type=f"ADT^{trigger}^ADT_A01",
        pid=patient,
        name=f"Patient^{patient}",
        patient="||19800101|M",
        visit="O|CLINIC^01",
        ts=ts,
    )


def _wait_listening(proc, log: Path, pattern: str, what: str) -> int:
    """The port a child printed in its `... listening on HOST:PORT` line (it picked it: no port races)."""
    deadline = time.monotonic() + 20
    while True:
        m = re.search(pattern, log.read_text(), re.M)
        if m:
            return int(m.group(1))
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}: {log.read_text()}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not start: {log.read_text()}")
        time.sleep(0.05)


def start_mock(processes, log: Path, *args: str) -> int:
    """`harness mock mllp` on a port of its choosing, logging to `log`; returns the port once it listens."""
    handle = open(log, "w")  # noqa: SIM115 - the child owns it; closed when the test ends
    proc = processes.harness("mock", "mllp", "--listen", "127.0.0.1:0", *args, stdout=handle)
    return _wait_listening(proc, log, r"^listening on 127\.0\.0\.1:(\d+)", "mock")


def received_ids(log: Path) -> list[str]:
    """Control ids the mock logged, one per message it received."""
    out = []
    for line in log.read_text().splitlines():
        for part in line.split():
            if part.startswith("control_id="):
                out.append(part.split("=", 1)[1])
    return out




def capture_through_proxy(
    processes, tmp_path: Path, upstream_port: int, messages: list[bytes], store_path: Path,
    *, channel: str = "adt", gap: float = 0.0,
) -> None:  # fmt: skip
    """Send the messages through a real `harness proxy` in front of the upstream; the proxy captures them.

    The proxy is stopped (SIGTERM, store flushed) before returning, so the store is complete.
    """
    import os
    import signal

    from harness.mllp_client import MLLPClient

    config = tmp_path / f"proxy-{channel}.yaml"
    config.write_text(
        "admin: off\n"
        "channels:\n"
        f"  {channel}:\n"
        "    protocol: mllp\n"
        "    listen: 127.0.0.1:0\n"
        f"    upstream: 127.0.0.1:{upstream_port}\n"
        "    capture: durable\n"
        "    ack_timeout_s: 2\n"
        "    on_ack_timeout: close\n"
    )
    log = tmp_path / f"proxy-{channel}.log"
    handle = open(log, "w")  # noqa: SIM115 - the child owns it
    proc = processes.harness(
        "proxy", "--config", str(config), "--store", str(store_path), stdout=handle, stderr=subprocess.STDOUT
    )
    port = _wait_listening(proc, log, rf"channel {channel} listening on 127\.0\.0\.1:(\d+)", "proxy")
    with MLLPClient("127.0.0.1", port, timeout=5) as client:
        for payload in messages:
            client.send(payload)
            if gap:
                time.sleep(gap)
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=60)
