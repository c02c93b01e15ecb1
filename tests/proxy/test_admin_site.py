"""The admin API on real sockets in a child process: refused on the head, bounded in time, size and count."""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.tls_material import make_self_signed

from . import admin_server

TOKEN = "s3cret-token-for-the-admin-site"
BIG = 200 * 1024 * 1024


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def read_bytes(pid: int) -> int:
    """Bytes the process has read through read(2)-like calls (sockets included): /proc/PID/io rchar."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar")


def deleted_files(pid: int) -> list[str]:
    """Files the process holds open that are unlinked (where twisted.web spools big bodies)."""
    out = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.endswith("(deleted)"):
            out.append(target)
    return out


def start(processes, tmp_path: Path, **admin) -> tuple[object, int]:
    if not admin:
        return admin_server.start(processes, TOKEN)
    config = tmp_path / "proxy.yaml"
    body = {"listen": "127.0.0.1:0", **admin}
    config.write_text(
        yaml.safe_dump(
            {"admin": body, "channels": {"adt": {"listen": "127.0.0.1:0", "upstream": "127.0.0.1:1"}}}
        )
    )
    return admin_server.start(processes, TOKEN, "--config", str(config))


def head(method: str, path: str, *lines: str) -> bytes:
    return (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n" + "".join(f"{h}\r\n" for h in lines) + "\r\n"
    ).encode()


def recv_response(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """Everything until the peer closes (or `timeout`)."""
    sock.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            break
        if not chunk:
            break
        data += chunk
    return data


def push(sock: socket.socket, total: int, timeout: float = 3.0) -> int:
    """Try to send `total` bytes; how many the socket took before the peer reset it or stopped reading."""
    sock.settimeout(timeout)
    chunk = b"x" * (1024 * 1024)
    sent = 0
    try:
        while sent < total:
            sent += sock.send(chunk[: min(len(chunk), total - sent)])
    except (TimeoutError, BrokenPipeError, ConnectionResetError):
        pass
    return sent


def authorized_health(port: int) -> dict:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head("GET", "/health", f"Authorization: Bearer {TOKEN}", "Connection: close"))
        data = recv_response(sock)
    assert data.startswith(b"HTTP/1.1 200"), data[:200]
    return json.loads(data.split(b"\r\n\r\n", 1)[1])


@pytest.mark.parametrize(
    "framing",
    [
        f"Content-Length: {BIG}",
        "Transfer-Encoding: chunked",
        f"Content-Length: {BIG}\r\nExpect: 100-continue",
    ],
)
def test_an_unauthenticated_200_mb_body_is_refused_on_its_head_and_never_read(processes, tmp_path, framing):
    proc, port = start(processes, tmp_path)
    pid = proc.pid
    authorized_health(port)  # warmed up: imports and first request done before measuring
    rss_before, read_before = rss_kib(pid), read_bytes(pid)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head("POST", "/channels/adt/faults", framing))
        sock.settimeout(10)
        answer = sock.recv(65536)  # the answer comes before a single body byte is sent
        assert answer.startswith(b"HTTP/1.1 401 Unauthorized"), answer[:200]
        assert b"Connection: close" in answer and b"100 Continue" not in answer
        sent = push(sock, BIG)
    read_after = read_bytes(pid)
    assert sent < 32 * 1024 * 1024, f"the socket took {sent} bytes: the proxy kept reading"
    assert read_after - read_before < 1024 * 1024, f"the process read {read_after - read_before} bytes"
    assert rss_kib(pid) - rss_before < 8 * 1024
    assert deleted_files(pid) == []  # nothing spooled to a temporary file
    assert authorized_health(port)["status"] == "ok"


def test_a_body_over_the_limit_gets_413_unread_even_with_the_token(processes, tmp_path):
    proc, port = start(processes, tmp_path, max_body_bytes=4096)
    auth = f"Authorization: Bearer {TOKEN}"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head("POST", "/channels/adt/faults", auth, "Content-Length: 5000"))
        answer = recv_response(sock)
    assert answer.startswith(b"HTTP/1.1 413") and b"the limit is 4096" in answer
    # chunked: counted as it comes, refused once past the limit
    read_before = read_bytes(proc.pid)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head("POST", "/channels/adt/faults", auth, "Transfer-Encoding: chunked"))
        chunk = b"%x\r\n%s\r\n" % (1024, b"{" * 1024)
        sent = 0
        sock.settimeout(3)
        try:
            for _ in range(BIG // 1024):
                sock.sendall(chunk)
                sent += len(chunk)
        except (TimeoutError, BrokenPipeError, ConnectionResetError):
            pass
        answer = recv_response(sock, 3)
    assert sent < 32 * 1024 * 1024
    assert read_bytes(proc.pid) - read_before < 2 * 1024 * 1024
    assert answer == b"" or answer.startswith(b"HTTP/1.1 413")
    # a rule within the limit still goes in
    rule = b'{"action": {"type": "drop"}}'
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            head("POST", "/channels/adt/faults", auth, f"Content-Length: {len(rule)}", "Connection: close")
            + rule
        )
        assert recv_response(sock).startswith(b"HTTP/1.1 201")


def test_a_request_that_trickles_in_gets_408_and_an_idle_connection_is_closed(processes, tmp_path):
    _, port = start(processes, tmp_path, request_timeout_s=1, idle_timeout_s=1.5)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        for _ in range(20):  # one header byte every 0.2 s: the idle timer alone would never fire
            try:
                sock.sendall(b"X")
            except OSError:
                break
            time.sleep(0.2)
        answer = recv_response(sock, 5)
        waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert waited < 6
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head("GET", "/health", f"Authorization: Bearer {TOKEN}"))
        sock.settimeout(10)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        assert recv_response(sock, 10) == b""  # keep-alive, then closed by the idle timeout
        assert time.monotonic() - started < 8


def test_connections_past_the_limit_are_closed_at_once(processes, tmp_path):
    _, port = start(processes, tmp_path, max_connections=3)
    held = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(3)]
    try:
        time.sleep(0.3)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as extra:
            extra.sendall(head("GET", "/health", f"Authorization: Bearer {TOKEN}"))
            assert recv_response(extra, 5) == b""
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.3)
    assert authorized_health(port)["status"] == "ok"


def test_health_can_be_public_with_up_or_down_only(processes, tmp_path):
    _, port = start(processes, tmp_path, health_public=True)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head("GET", "/health", "Connection: close"))
        answer = recv_response(sock)
    assert answer.startswith(b"HTTP/1.1 200")
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1]) == {"status": "ok"}
    for path in ("/channels", "/metrics", "/health/x"):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(head("GET", path, "Connection: close"))
            assert recv_response(sock).startswith(b"HTTP/1.1 401"), path
    assert set(authorized_health(port)) >= {"status", "channels", "uptime_s"}


def _tls_config(tmp_path: Path) -> tuple[dict, Path]:
    cert, key = make_self_signed(tmp_path)
    return {"tls": {"cert": str(cert), "key": str(key)}}, cert


def test_admin_over_tls_with_urllib_and_curl(processes, tmp_path):
    tls, cert = _tls_config(tmp_path)
    _, port = start(processes, tmp_path, **tls)
    import urllib.request

    context = ssl.create_default_context(cafile=str(cert))
    request = urllib.request.Request(f"https://localhost:{port}/health")
    request.add_header("Authorization", f"Bearer {TOKEN}")
    with urllib.request.urlopen(request, timeout=10, context=context) as response:
        assert json.loads(response.read())["status"] == "ok"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as plain:
        plain.sendall(head("GET", "/health", f"Authorization: Bearer {TOKEN}"))
        assert not recv_response(plain, 5).startswith(b"HTTP/1.1 200")  # no clear-text answer
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed (Debian package curl)")
    out = subprocess.run(
        [curl, "-sS", "--max-time", "10", "--cacert", str(cert), "-H", f"Authorization: Bearer {TOKEN}",
         f"https://localhost:{port}/channels"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert [c["name"] for c in json.loads(out.stdout)["channels"]] == ["adt", "lab"]


def test_requests_library_talks_to_the_tls_admin_api(processes, tmp_path):
    requests = pytest.importorskip("requests")
    tls, cert = _tls_config(tmp_path)
    _, port = start(processes, tmp_path, **tls)
    response = requests.post(
        f"https://localhost:{port}/channels/adt/faults",
        json={"action": {"type": "drop"}, "limit": 1},
        headers={"Authorization": f"Bearer {TOKEN}"},
        verify=str(cert),
        timeout=10,
    )
    assert response.status_code == 201 and response.json()["rule"]["id"] == "r1"


# --- through `harness proxy` ------------------------------------------------------------------------------


def test_the_proxy_refuses_a_token_file_open_to_others_and_says_how_to_fix_it(processes, tmp_path):
    from tests.ports import free_port
    from tests.proxy.proxy_process import proxy_log, start_proxy, write_config

    token_file = tmp_path / "admin-token"
    token_file.write_text("a-long-enough-token-0123456789\n")
    token_file.chmod(0o644)
    admin_port = free_port()
    admin = {"listen": f"127.0.0.1:{admin_port}", "token_file": str(token_file)}
    config, port = write_config(tmp_path, upstream="127.0.0.1:1", admin=admin, capture="off")
    proc = start_proxy(processes, config, port, env={"HARNESS_ADMIN_TOKEN": ""})
    deadline = time.monotonic() + 10
    while "admin API not started" not in proxy_log(config) and time.monotonic() < deadline:
        time.sleep(0.05)
    log = proxy_log(config)
    assert "admin API not started: permissions 0644" in log and f"chmod 600 {token_file}" in log
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", admin_port), timeout=2).close()
    assert proc.poll() is None  # the channels keep running


def test_proxy_check_refuses_a_clear_text_admin_api_beyond_loopback(tmp_path):
    from tests.processes import HARNESS, ROOT
    from tests.proxy.proxy_process import write_config

    config, _ = write_config(
        tmp_path, upstream="127.0.0.1:1", admin={"listen": "0.0.0.0:8700"}, capture="off"
    )
    out = subprocess.run(
        [*HARNESS, "proxy", "--config", str(config), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert out.returncode == 2
    assert "admin.listen: 0.0.0.0:8700 is reachable beyond this machine" in out.stderr
    assert "Traceback" not in out.stderr


def test_harness_proxy_serves_its_admin_api_over_tls_with_public_health(processes, tmp_path):
    import urllib.request

    from tests.ports import free_port
    from tests.proxy.proxy_process import proxy_log, start_proxy, write_config

    tls, cert = _tls_config(tmp_path)
    admin_port = free_port()
    admin = {"listen": f"127.0.0.1:{admin_port}", "health_public": True, **tls}
    config, port = write_config(tmp_path, upstream="127.0.0.1:1", admin=admin, capture="off")
    start_proxy(processes, config, port, env={"HARNESS_ADMIN_TOKEN": TOKEN})
    deadline = time.monotonic() + 10
    while "admin API listening" not in proxy_log(config) and time.monotonic() < deadline:
        time.sleep(0.05)
    context = ssl.create_default_context(cafile=str(cert))
    with urllib.request.urlopen(
        f"https://localhost:{admin_port}/health", timeout=3, context=context
    ) as response:
        assert json.loads(response.read()) == {"status": "ok"}


def test_admin_api_over_mutual_tls_needs_a_client_certificate_from_the_configured_ca(processes, tmp_path):
    requests = pytest.importorskip("requests")
    from tests.tls_material import TestCA

    ca = TestCA(tmp_path)
    cert, key = ca.issue("server")
    client = tuple(map(str, ca.issue("ops-console", client=True)))
    stranger = tuple(map(str, TestCA(tmp_path, "stranger").issue("stranger", client=True)))
    tls = {"cert": str(cert), "key": str(key), "ca": str(ca.path), "min_version": "1.3"}
    _, port = start(processes, tmp_path, tls=tls)
    url = f"https://localhost:{port}/health"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    answer = requests.get(url, headers=auth, verify=str(ca.path), cert=client, timeout=10)
    assert answer.status_code == 200 and answer.json()["status"] == "ok"
    for without in (None, stranger):  # no certificate, or one the admin API's CA did not sign
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(url, headers=auth, verify=str(ca.path), cert=without, timeout=10)
    context = ssl.create_default_context(cafile=str(ca.path))
    context.load_cert_chain(*client)
    context.maximum_version = ssl.TLSVersion.TLSv1_2  # below the configured min_version 1.3
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, pytest.raises(ssl.SSLError):
        context.wrap_socket(raw, server_hostname="localhost")
    # harness's own admin client presents the certificate from the environment
    from tests.processes import HARNESS, ROOT

    env = {**os.environ, "HARNESS_ADMIN_TOKEN": TOKEN, "HARNESS_ADMIN_CA": str(ca.path)}
    command = [*HARNESS, "fault", "list", "--admin", f"https://localhost:{port}", "--json"]
    with_cert = {**env, "HARNESS_ADMIN_CERT": client[0], "HARNESS_ADMIN_KEY": client[1]}
    done = subprocess.run(command, env=with_cert, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    refused = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert refused.returncode == 2 and "admin API" in refused.stderr, refused.stderr
