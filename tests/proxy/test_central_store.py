"""Proxies writing one PostgreSQL store, shown with real processes on loopback: several at once while
another process reads, a SIGKILL in durable mode, and the database restarted mid-stream (durable
channels refuse instead of forwarding uncaptured, and recover by themselves)."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from harness.hl7v2.meta import extract
from harness.store import Store
from tests.mock_mllp_process import start_mock
from tests.ports import free_port
from tests.proxy.proxy_process import Sender, adt, start_proxy

TOKEN = "central-store-test-token-0123"

READER = r"""
import sys, time
from pathlib import Path
from harness.store import ExchangeFilter, Store

url, stop = sys.argv[1], Path(sys.argv[2])
with Store(url, create=False) as store:
    while True:
        last = stop.exists()
        seen = [ex.control_id for ex in store.query(ExchangeFilter(channel="adt"), bodies=False)]
        assert len(seen) == len(set(seen)), "a reader saw an exchange twice"
        print(len(seen), flush=True)
        if last:
            break
        time.sleep(0.02)
"""


def config(tmp_path: Path, name: str, url: str, upstream: int, **extra) -> tuple[Path, int]:
    port = free_port()
    channel = {"protocol": "mllp", "listen": f"127.0.0.1:{port}", "upstream": f"127.0.0.1:{upstream}",
               "capture": "durable", **extra.pop("channel", {})}  # fmt: skip
    data = {"store": url, "instance": name, "admin": False, "channels": {"adt": channel}, **extra}
    path = tmp_path / name / "proxy.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(data))
    return path, port


def send_all(port: int, prefix: str, count: int, acked: list[str]) -> None:
    sender = Sender(port, timeout=20)
    try:
        for i in range(count):
            control_id = f"{prefix}-{i:04d}"
            reply = sender.exchange(adt(control_id, size=600))
            assert reply is not None and extract(reply).ack_control_id == control_id
            acked.append(control_id)
    finally:
        sender.close()


@pytest.mark.timeout(180)
def test_three_proxies_write_one_database_while_a_fourth_process_reads(processes, tmp_path, pg_url):
    mock = start_mock(processes)
    with Store(pg_url):
        pass  # the schema exists before the reader opens the store without creating it
    proxies = []
    for name in ("his-1", "his-2", "ybj-1"):
        path, port = config(tmp_path, name, pg_url, mock.port)
        proxies.append((name, start_proxy(processes, path, port), port))
    stop_reading = tmp_path / "stop"
    reader = processes.start([sys.executable, "-c", READER, pg_url, str(stop_reading)])
    assert reader.stdout.readline().strip() == "0"  # reading before the first message is sent
    acked: dict[str, list[str]] = {name: [] for name, _, _ in proxies}
    threads = [
        threading.Thread(target=send_all, args=(port, name, 150, acked[name])) for name, _, port in proxies
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(150)
    stop_reading.touch()
    out, _ = reader.communicate(timeout=30)
    assert reader.returncode == 0, out
    counts = [int(line) for line in out.split()]
    assert counts == sorted(counts) and counts[-1] == 450  # never a row twice, never one gone again
    assert len({c for c in counts if 0 < c < 450}) >= 3  # it read while the proxies wrote
    for _, proc, _ in proxies:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
    with Store(pg_url) as store:
        rows = list(store.query(bodies=False))
    assert len(rows) == 450 and len({ex.id for ex in rows}) == 450
    for name, ids in acked.items():
        assert len(ids) == 150
        mine = sorted(ex.control_id for ex in rows if ex.proxy == name)
        assert mine == sorted(ids)  # nothing lost, nothing duplicated, each tagged with its proxy


@pytest.mark.timeout(120)
@pytest.mark.parametrize("encrypted", [False, True], ids=["clear", "aes"])
def test_sigkill_of_a_durable_proxy_on_postgresql_loses_no_acknowledged_exchange(
    processes, tmp_path, pg_url, encrypted
):
    from harness.store import crypto

    mock = start_mock(processes)
    keys, extra = None, {}
    if encrypted:
        (tmp_path / "keys").mkdir()
        key = crypto.new_key_file(tmp_path / "keys" / "store.key")
        keys = crypto.Keyring([key])
        extra = {"store": {"path": pg_url, "encryption": {"key_file": str(tmp_path / "keys" / "store.key")}}}
    path, port = config(tmp_path, "p1", pg_url, mock.port, **extra)
    proxy = start_proxy(processes, path, port)
    acked: list[str] = []
    sender = Sender(port, timeout=10)
    try:
        for i in range(100_000):
            control_id = f"K{i:05d}"
            try:
                reply = sender.exchange(adt(control_id, size=800))
            except OSError:
                break
            if reply is None:
                break
            acked.append(control_id)
            if len(acked) == 200:
                threading.Thread(target=os.killpg, args=(proxy.pid, signal.SIGKILL)).start()
    finally:
        sender.close()
    proxy.wait(10)
    assert proxy.returncode == -signal.SIGKILL and len(acked) >= 200
    with Store(pg_url, keys=keys) as store:
        rows = list(store.query())
        sealed = store._execute("SELECT request FROM exchanges").fetchall()
    stored = {ex.control_id for ex in rows}
    assert [cid for cid in acked if cid not in stored] == []
    assert all(ex.request == adt(ex.control_id, size=800) for ex in rows)
    assert any(b"ZHANG^SAN" in bytes(r) for (r,) in sealed) is not encrypted


def health(admin_port: int) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{admin_port}/health")
    request.add_header("Authorization", f"Bearer {TOKEN}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def until(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


@pytest.mark.timeout(180)
def test_a_database_restart_mid_stream_refuses_instead_of_forwarding_uncaptured(processes, tmp_path):
    from tests.postgres import start_server

    server = start_server()
    try:
        url = server.create_database()
        mock = start_mock(processes)
        admin_port = free_port()
        path, port = config(tmp_path, "p1", url, mock.port, admin={"listen": f"127.0.0.1:{admin_port}"})
        start_proxy(processes, path, port, env={"HARNESS_ADMIN_TOKEN": TOKEN})
        until(lambda: health(admin_port) == 200)
        acked: list[str] = []
        refused = 0
        sender = Sender(port, timeout=10)
        phase = "before"
        forwarded_when_down = None
        sent = 0
        started = time.monotonic()
        while phase != "done":
            assert time.monotonic() - started < 150, phase
            control_id = f"R{sent:05d}"
            sent += 1
            try:
                reply = sender.exchange(adt(control_id, size=400))
            except OSError:
                reply = None
            if reply is not None and extract(reply).ack_code == "AA":
                acked.append(control_id)
            else:
                refused += 1
                sender.close()
            if phase == "before" and len(acked) >= 50:
                server.stop()
                phase = "stopping"
            elif phase == "stopping" and health(admin_port) == 503:
                forwarded_when_down = len(mock.messages())
                phase = "down"
                down_since = time.monotonic()
            elif phase == "down" and time.monotonic() - down_since > 2:
                assert len(mock.messages()) == forwarded_when_down  # nothing new reached the upstream
                server.start()
                phase = "recovering"
            elif phase == "recovering" and health(admin_port) == 200:
                recovered_at = len(acked)
                phase = "after"
            elif phase == "after" and len(acked) >= recovered_at + 50:
                phase = "done"
            if phase in ("down", "stopping"):
                time.sleep(0.02)
        sender.close()
        assert refused > 0
        with Store(url) as store:
            stored = {ex.control_id for ex in store.query(bodies=False)}
        assert [cid for cid in acked if cid not in stored] == []  # every acknowledged exchange is stored
        upstream_got = {line.split()[1].removeprefix("control_id=") for line in mock.messages()}
        assert set(acked) <= upstream_got
    finally:
        server.cleanup()
