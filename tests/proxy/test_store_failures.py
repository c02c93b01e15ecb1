"""The capture never jams an interface or lies, shown with real processes on loopback.

- A GBK hospital name in MSH-4 without MSH-18 (the most common Chinese HIS message): relayed and stored,
  bytes identical, in durable and fast mode.
- The capture writer's process killed (kill -9) mid-stream: every message the upstream received is
  in the store; the proxy replaces the writer by itself.
- A store that cannot record (its file replaced by something it cannot open): a durable channel
  forwards nothing and closes or NAKs; /health answers 503 with the reason until the store is back;
  a fast channel keeps relaying and counts what it could not capture; the shutdown line says so.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from harness.hl7v2.meta import extract
from harness.store import ExchangeFilter, Store, crypto
from tests.messages import adt
from tests.mock_mllp_process import start_mock
from tests.ports import free_port
from tests.proxy.proxy_process import Sender, proxy_log, start_proxy, store_key, write_config

TOKEN = "store-health-test-token-0123"


def stored(path: Path, key: Path | None = None) -> list:
    keys = crypto.Keyring([crypto.load_key_file(key)], [key]) if key else None
    with Store(path, keys=keys) as store:
        return list(store.query(ExchangeFilter()))


def stop(proxy) -> None:
    os.killpg(proxy.pid, signal.SIGTERM)
    proxy.wait(timeout=60)


def writer_pids(proxy_pid: int) -> list[int]:
    """Children of the proxy running the capture writer, read from /proc (no ps column widths)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
            if ppid != proxy_pid:
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if b"_serve_writer" in f.read():
                    pids.append(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    return pids


def health(admin_port: int) -> tuple[int, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{admin_port}/health")
    request.add_header("Authorization", f"Bearer {TOKEN}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def metric(admin_port: int, name: str) -> float:
    request = urllib.request.Request(f"http://127.0.0.1:{admin_port}/metrics")
    request.add_header("Authorization", f"Bearer {TOKEN}")
    with urllib.request.urlopen(request, timeout=5) as response:
        text = response.read().decode()
    match = re.search(rf'^{name}{{channel="adt"}} (\S+)$', text, re.M)
    assert match, f"{name} not in /metrics"
    return float(match.group(1))


def until(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def start_with_admin(processes, tmp_path, upstream: str, **channel):
    admin_port = free_port()
    config, port = write_config(tmp_path, upstream=upstream, admin={"listen": f"127.0.0.1:{admin_port}"},
                                **channel)
    proxy = start_proxy(processes, config, port, env={"HARNESS_ADMIN_TOKEN": TOKEN})
    until(lambda: "admin API listening" in proxy_log(config))
    return proxy, config, port, admin_port


@pytest.mark.parametrize("capture", ["durable", "fast"])
def test_a_gbk_hospital_name_without_msh18_is_relayed_and_stored(processes, tmp_path, capture):
    mock = start_mock(processes)
    config, port = write_config(tmp_path, upstream=f"127.0.0.1:{mock.port}", capture=capture)
    proxy = start_proxy(processes, config, port)
    message = (
        "MSH|^~\\&|HIS|昆明市第一人民医院|HC|HOSP|20260101120000||ADT^A01^ADT_A01|G1|P|2.5\r"
        "PID|1||900001^^^HOSP^MR||张三\r"
    ).encode("gbk")
    sender = Sender(port)
    try:
        reply = sender.exchange(message)
    finally:
        sender.close()
    assert reply is not None and extract(reply).ack_code == "AA"
    stop(proxy)
    (ex,) = stored(tmp_path / "captures.db")
    assert ex.request == message and ex.response == reply and ex.outcome == "ok"
    assert (ex.charset, ex.meta["sending_facility"]) == ("gb18030", "昆明市第一人民医院")


@pytest.mark.parametrize("algorithm", [None, "sm4-gcm"], ids=["clear", "sm4"])
def test_killing_the_capture_writer_loses_no_forwarded_message_and_the_proxy_recovers(
    processes, tmp_path, algorithm
):
    mock = start_mock(processes)
    encryption, key = store_key(tmp_path, algorithm)
    proxy, config, port, admin_port = start_with_admin(
        processes, tmp_path, f"127.0.0.1:{mock.port}", encryption=encryption
    )
    until(lambda: writer_pids(proxy.pid))
    (first,) = writer_pids(proxy.pid)
    acked, refused = [], []
    sender = Sender(port, timeout=10)
    try:
        for i in range(120):
            if i == 40:
                os.kill(first, signal.SIGKILL)  # the OOM killer strikes mid-stream
            control_id = f"K{i:04d}"
            try:
                reply = sender.exchange(adt(control_id))
            except OSError:
                reply = None
            if reply is None:
                refused.append(control_id)
                sender.close()
            else:
                acked.append(control_id)
    finally:
        sender.close()
    until(lambda: writer_pids(proxy.pid) and writer_pids(proxy.pid) != [first])
    assert health(admin_port)[0] == 200
    mock.wait_for(f"control_id={acked[-1]}")
    stop(proxy)
    received = {m.split("control_id=")[1].split()[0] for m in mock.messages()}
    rows = {ex.control_id: ex for ex in stored(tmp_path / "captures.db", key)}
    assert received <= set(rows), f"forwarded but not captured: {sorted(received - set(rows))}"
    assert set(acked) <= {cid for cid, ex in rows.items() if ex.outcome == "ok"}
    assert len(acked) >= 100  # the stream went on after the kill
    assert "starting a new one" in proxy_log(config) or "records exchanges again" in proxy_log(config)


@pytest.mark.parametrize("algorithm", [None, "aes-256-gcm"], ids=["clear", "aes"])
def test_a_durable_channel_refuses_while_the_store_cannot_record_and_health_says_why(
    processes, tmp_path, algorithm
):
    mock = start_mock(processes)
    encryption, key = store_key(tmp_path, algorithm)
    proxy, config, port, admin_port = start_with_admin(
        processes, tmp_path, f"127.0.0.1:{mock.port}", on_store_error="nak", encryption=encryption
    )
    sender = Sender(port)
    store = tmp_path / "captures.db"
    try:
        assert extract(sender.exchange(adt("B1"))).ack_code == "AA"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{store}{suffix}").unlink(missing_ok=True)
        store.mkdir()  # what is at the path now cannot be opened as a store
        until(lambda: health(admin_port)[0] == 503)
        status, body = health(admin_port)
        assert "deleted or replaced" in body["store_down"]["adt"]
        seen = len(mock.messages())
        reply = sender.exchange(adt("B2"))
        assert extract(reply).ack_code == "AR" and b"capture store unavailable" in reply
        assert len(mock.messages()) == seen  # not forwarded
        store.rmdir()  # the operator puts things right
        until(lambda: health(admin_port)[0] == 200)
        assert extract(sender.exchange(adt("B3"))).ack_code == "AA"
    finally:
        sender.close()
    stop(proxy)
    rows = [(ex.control_id, ex.outcome) for ex in stored(store, key)]  # the new file, from when it came back
    assert rows in ([("B3", "ok")], [("B2", "error"), ("B3", "ok")])  # the refusal, when it came in time


def test_a_fast_channel_keeps_relaying_and_counts_what_it_could_not_capture(processes, tmp_path):
    mock = start_mock(processes)
    proxy, config, port, admin_port = start_with_admin(
        processes, tmp_path, f"127.0.0.1:{mock.port}", capture="fast"
    )
    store = tmp_path / "captures.db"
    sender = Sender(port)
    try:
        assert extract(sender.exchange(adt("F1"))).ack_code == "AA"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{store}{suffix}").unlink(missing_ok=True)
        store.mkdir()
        until(lambda: health(admin_port)[0] == 503)
        for i in range(5):
            assert extract(sender.exchange(adt(f"F{i + 2}"))).ack_code == "AA"  # still relayed
        until(lambda: metric(admin_port, "harness_uncaptured_exchanges_total") >= 5)
        assert metric(admin_port, "harness_store_up") == 0
    finally:
        sender.close()
    stop(proxy)
    shutil.rmtree(store)
    assert "could NOT be captured" in proxy_log(config)


def test_a_durable_http_channel_answers_503_and_forwards_nothing_while_the_store_cannot_record(
    processes, tmp_path
):
    from tests.proxy.http_setup import request, run_proxy, start_simulator, write_http_config

    fhir = start_simulator(processes, "fhir")
    admin_port = free_port()
    config, ports = write_http_config(
        tmp_path, {"fhir": {"kind": "fhir", "upstream": f"http://127.0.0.1:{fhir}"}},
        admin={"listen": f"127.0.0.1:{admin_port}"},
    )
    proxy = run_proxy(processes, config, ports, env={"HARNESS_ADMIN_TOKEN": TOKEN})
    until(lambda: "admin API listening" in proxy_log(config))
    store = tmp_path / "captures.db"
    assert request(ports["fhir"], "GET", "/fhir/metadata")[0] == 200
    for suffix in ("", "-wal", "-shm"):
        Path(f"{store}{suffix}").unlink(missing_ok=True)
    store.mkdir()
    until(lambda: health(admin_port)[0] == 503)
    status, _, body = request(ports["fhir"], "GET", "/fhir/metadata")
    assert status == 503 and b"capture store" in body
    store.rmdir()
    until(lambda: health(admin_port)[0] == 200)
    assert request(ports["fhir"], "GET", "/fhir/metadata")[0] == 200
    stop(proxy)
