"""`harness proxy` as a process: start-up lines, clean stop, exit 2 on bad input, TLS, backups, admin."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.request

import pytest
import yaml

from harness.exchange import Exchange
from harness.hl7v2.meta import extract
from harness.store import ExchangeFilter, Store
from tests.mock_mllp_process import start_mock
from tests.ports import free_port
from tests.processes import HARNESS, ROOT
from tests.proxy.proxy_process import Sender, adt, proxy_log, start_proxy, write_config
from tests.tls_material import make_self_signed


def run_harness(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*HARNESS, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def stop(proc) -> int:
    os.killpg(proc.pid, signal.SIGTERM)
    return proc.wait(timeout=60)


def rows(path) -> list:
    store = Store(path)
    try:
        return list(store.query(ExchangeFilter()))
    finally:
        store.close()


def test_bad_config_exits_2_naming_the_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("channels:\n  adt: {listen: '2575', upstream: '127.0.0.1:1'}\n")
    result = run_harness("proxy", "--config", str(path))
    assert result.returncode == 2
    assert "channels.adt.listen: expected HOST:PORT, got '2575'" in result.stderr
    result = run_harness("proxy", "--config", str(tmp_path / "missing.yaml"))
    assert result.returncode == 2 and "cannot read" in result.stderr


def test_a_port_in_use_exits_2_with_a_clear_message(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        path = tmp_path / "c.yaml"
        path.write_text(yaml.safe_dump({
            "admin": False, "store": str(tmp_path / "c.db"),
            "channels": {"adt": {"listen": f"127.0.0.1:{port}", "upstream": "127.0.0.1:1"}},
        }))
        result = run_harness("proxy", "--config", str(path))
    assert result.returncode == 2
    assert f"channels.adt.listen: cannot listen on 127.0.0.1:{port}: Address already in use" in result.stderr


def test_a_proxy_without_the_encrypted_stores_key_exits_2_saying_which_key(tmp_path):
    from harness.store import crypto

    (tmp_path / "keys").mkdir()
    right, wrong = (crypto.new_key_file(tmp_path / "keys" / name) for name in ("right.key", "wrong.key"))
    with Store(tmp_path / "captures.db", keys=crypto.Keyring([right], encrypts=True)) as store:
        store.add(Exchange(channel="adt", request=adt("E1")))
    for encryption, says in (
        (None, f"is encrypted (key id {right.id})"),
        ({"key_file": str(tmp_path / "keys" / "wrong.key")}, f"the key given ({wrong.id}) is not it"),
    ):
        config, _ = write_config(tmp_path, upstream="127.0.0.1:1", encryption=encryption)
        result = run_harness("proxy", "--config", str(config))
        assert result.returncode == 2 and says in result.stderr, result.stderr


def test_listening_line_stop_on_sigterm_and_store_override(processes, tmp_path):
    mock = start_mock(processes)
    config, port = write_config(tmp_path, upstream=f"127.0.0.1:{mock.port}")
    other_store = tmp_path / "elsewhere.db"
    proxy = start_proxy(processes, config, port, "--store", str(other_store))
    sender = Sender(port)
    assert extract(sender.exchange(adt("S1"))).ack_code == "AA"
    sender.close()
    assert stop(proxy) == 0
    log = proxy_log(config)
    assert f"channel adt listening on 127.0.0.1:{port} -> 127.0.0.1:{mock.port}\n" in log
    assert "proxy stopped; 1 exchange(s) captured" in log
    assert [ex.control_id for ex in rows(other_store)] == ["S1"]
    assert not (tmp_path / "captures.db").exists()
    assert (other_store.stat().st_mode & 0o777) == 0o600


def test_json_log_lines(processes, tmp_path):
    config, port = write_config(tmp_path, upstream=f"127.0.0.1:{free_port()}", capture="off")
    proxy = start_proxy(processes, config, port, "--json-log")
    sender = Sender(port)
    assert sender.exchange(adt("J1")) is None  # upstream down: the connection is closed
    sender.close()
    stop(proxy)
    records = [json.loads(line) for line in proxy_log(config).splitlines() if line.strip()]
    assert records[0]["message"].startswith("channel adt listening on") and records[0]["channel"] == "adt"
    assert any(r["level"] == "warning" and "upstream_down" in r["message"] for r in records)


def test_backups_are_tried_in_order_when_the_primary_is_down(processes, tmp_path):
    mock = start_mock(processes)
    dead = free_port()
    config, port = write_config(
        tmp_path, upstream=[f"127.0.0.1:{dead}", f"127.0.0.1:{mock.port}"], capture="durable"
    )
    proxy = start_proxy(processes, config, port)
    sender = Sender(port)
    for i in range(3):
        assert extract(sender.exchange(adt(f"B{i}"))).ack_code == "AA"
    sender.close()
    stop(proxy)
    got = rows(tmp_path / "captures.db")
    assert [ex.upstream_addr for ex in got] == [f"127.0.0.1:{mock.port}"] * 3
    assert "using 127.0.0.1:" in proxy_log(config)


def test_ack_timeout_closes_the_sender_and_is_captured(processes, tmp_path):
    mock = start_mock(processes, "--no-answer")
    config, port = write_config(tmp_path, upstream=f"127.0.0.1:{mock.port}", ack_timeout_s=0.5)
    proxy = start_proxy(processes, config, port)
    sender = Sender(port)
    assert sender.exchange(adt("T1"), timeout=10) is None
    stop(proxy)
    (ex,) = rows(tmp_path / "captures.db")
    assert ex.outcome == "timeout" and ex.response is None and ex.control_id == "T1"


def test_tls_on_both_sides_with_client_certificates(processes, tmp_path):
    up_cert, up_key = make_self_signed(tmp_path, "upstream")
    proxy_cert, proxy_key = make_self_signed(tmp_path, "proxy")
    client_cert, client_key = make_self_signed(tmp_path, "sender")
    mock = start_mock(processes, "--tls-cert", str(up_cert), "--tls-key", str(up_key))
    config, port = write_config(
        tmp_path,
        upstream=f"127.0.0.1:{mock.port}",
        tls={"cert": str(proxy_cert), "key": str(proxy_key), "ca": str(client_cert)},
        upstream_tls={"ca": str(up_cert), "server_name": "localhost"},
    )
    proxy = start_proxy(processes, config, port)
    context = ssl.create_default_context(cafile=str(proxy_cert))
    context.load_cert_chain(str(client_cert), str(client_key))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(b"\x0b" + adt("TLS1") + b"\x1c\r")
            data = b""
            while not data.endswith(b"\x1c\r"):
                chunk = tls.recv(65536)
                assert chunk, "connection closed before the ACK"
                data += chunk
    assert extract(data[1:-2]).ack_control_id == "TLS1"
    # without a client certificate the handshake is refused
    bare = ssl.create_default_context(cafile=str(proxy_cert))
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with bare.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(b"\x0b" + adt("TLS2") + b"\x1c\r")
                if not tls.recv(65536):
                    raise ConnectionError("closed")
    stop(proxy)
    assert [ex.control_id for ex in rows(tmp_path / "captures.db")] == ["TLS1"]


def test_admin_api_shows_counters_and_takes_fault_rules(processes, tmp_path):
    mock = start_mock(processes)
    admin_port = free_port()
    config, port = write_config(
        tmp_path, upstream=f"127.0.0.1:{mock.port}", admin={"listen": f"127.0.0.1:{admin_port}"}
    )
    proxy = start_proxy(processes, config, port, env={"HARNESS_ADMIN_TOKEN": "t0ken-for-the-admin-test"})
    base = f"http://127.0.0.1:{admin_port}"

    def call(method: str, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(base + path, data=data, method=method)
        request.add_header("Authorization", "Bearer t0ken-for-the-admin-test")
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    deadline = time.monotonic() + 10
    while "admin API listening" not in proxy_log(config) and time.monotonic() < deadline:
        time.sleep(0.05)
    sender = Sender(port)
    assert extract(sender.exchange(adt("A1"))).ack_code == "AA"
    call("POST", "/channels/adt/faults", {"match": {"first_n": 1}, "action": {"type": "nak", "code": "AR"}})
    assert extract(sender.exchange(adt("A2"))).ack_code == "AR"
    assert extract(sender.exchange(adt("A3"))).ack_code == "AA"
    sender.close()
    channels = call("GET", "/channels")
    (adt_channel,) = channels["channels"]
    counters = adt_channel["counters"]
    assert counters["messages"] == 3 and counters["ok"] == 2 and counters["faults"] == 1
    stop(proxy)
    assert [ex.outcome for ex in rows(tmp_path / "captures.db")] == ["ok", "fault", "ok"]


def test_without_an_admin_token_the_proxy_says_why_and_still_proxies(processes, tmp_path):
    mock = start_mock(processes)
    config, port = write_config(
        tmp_path, upstream=f"127.0.0.1:{mock.port}", admin={"listen": f"127.0.0.1:{free_port()}"}
    )
    env = {"HARNESS_ADMIN_TOKEN": ""}
    proxy = start_proxy(processes, config, port, env=env)
    sender = Sender(port)
    assert extract(sender.exchange(adt("N1"))).ack_code == "AA"
    sender.close()
    stop(proxy)
    assert "admin API not started: no token" in proxy_log(config)


def test_sigint_stops_cleanly_and_check_only_validates(processes, tmp_path):
    mock = start_mock(processes)
    config, port = write_config(tmp_path, upstream=f"127.0.0.1:{mock.port}", capture="fast")
    result = run_harness("proxy", "--config", str(config), "--check")
    assert result.returncode == 0 and "ok (1 channel(s))" in result.stdout
    proxy = start_proxy(processes, config, port)
    sender = Sender(port)
    for i in range(20):
        assert extract(sender.exchange(adt(f"I{i}"))).ack_code == "AA"
    sender.close()
    os.killpg(proxy.pid, signal.SIGINT)
    assert proxy.wait(timeout=60) == 0
    assert len(rows(tmp_path / "captures.db")) == 20  # the fast writer was flushed on the way out
