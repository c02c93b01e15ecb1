"""Replay test support: ADT messages for a few patients, a `harness mock mllp` child, and a capture
store filled with real exchanges (the messages sent through the MLLP client to a mock, stored as
captured)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from harness.exchange import Exchange
from harness.store import Store
from tests.conftest import free_port


def adt(i: int, patient: str, *, ts: str = "20261124233000", trigger: str = "A08") -> bytes:
    return (
        f"MSH|^~\\&|HIS|HOSP|HC|HOSP|{ts}||ADT^{trigger}^ADT_A01|MSG{i:05d}|P|2.5\r"
        f"EVN|{trigger}|{ts}\r"
        f"PID|1||{patient}^^^HOSP^MR||Patient^{patient}||19800101|M\r"
        f"PV1|1|O|CLINIC^01\r"
    ).encode()


def start_mock(processes, log: Path, *args: str) -> int:
    """`harness mock mllp` on a free port, logging to `log`; returns the port once it listens."""
    port = free_port()
    handle = open(log, "w")  # noqa: SIM115 - the child owns it; closed when the test ends
    proc = processes.harness("mock", "mllp", "--listen", f"127.0.0.1:{port}", *args, stdout=handle)
    deadline = time.monotonic() + 20
    while "listening on" not in log.read_text():
        if proc.poll() is not None:
            raise RuntimeError(f"mock exited with {proc.returncode}: {log.read_text()}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"mock did not start: {log.read_text()}")
        time.sleep(0.05)
    return port


def received_ids(log: Path) -> list[str]:
    """Control ids the mock logged, one per message it received."""
    out = []
    for line in log.read_text().splitlines():
        for part in line.split():
            if part.startswith("control_id="):
                out.append(part.split("=", 1)[1])
    return out


def capture(
    store_path: Path,
    port: int,
    messages: list[bytes],
    *,
    channel: str = "adt",
    start: float = 0.0,
    gap: float = 1.0,
    timeout: float = 5.0,
) -> list[int]:
    """Send each message to the peer on `port` and store the exchange as the proxy would have captured it.

    started_at is spread by `gap` seconds from `start` (a captured night, compressed), so pacing and
    time-window selections have realistic timestamps.
    """
    from harness.hl7v2.meta import extract
    from harness.mllp_client import MLLPClient

    ids = []
    start = start or time.time() - 3600
    with Store(store_path) as store, MLLPClient("127.0.0.1", port, timeout=timeout) as client:
        for i, payload in enumerate(messages):
            meta = extract(payload)
            result = client.send(payload, meta.control_id)
            if result.error_kind == "timeout":
                outcome = "timeout"
            elif result.error:
                outcome = "upstream_down"
            else:
                outcome = "ok" if result.ack_code in ("AA", "CA") else "nak"
            t0 = start + i * gap
            ex = Exchange(
                channel=channel,
                started_at=t0,
                ended_at=t0 + (result.rtt_ms or 0) / 1000,
                latency_ms=result.rtt_ms,
                client_addr="127.0.0.1:40000",
                upstream_addr=f"127.0.0.1:{port}",
                request=payload,
                response=result.ack,
                outcome=outcome,
                ack_code=result.ack_code,
                message_type=meta.message_code,
                control_id=meta.control_id,
                charset=meta.charset,
                error=result.error,
            )
            ids.append(store.add(ex))
    return ids


@pytest.fixture
def mock_log(tmp_path) -> Path:
    return tmp_path / "mock.log"
