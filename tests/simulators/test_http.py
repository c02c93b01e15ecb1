"""The shared Twisted shell: body limit, keep-alive, errors, logging, shutdown, CLI options."""

import http.client
import signal
import socket
import subprocess
import sys

import pytest
from twisted.web.test.requesthelper import DummyRequest

from harness.simulators.http import SimulatorResource
from harness.simulators.wire import HttpRequest, HttpResponse, text_response
from tests.childproc import start_listening
from tests.processes import HARNESS, ROOT

GATEWAY = "/fsi/api/rsfComIfsService/callService"


class Exploding:
    name = "exploding"

    def handle(self, request: HttpRequest) -> HttpResponse:
        raise RuntimeError("boom")

    def too_large(self, request: HttpRequest, limit: int) -> HttpResponse:
        return text_response(413, "too large")


def test_a_failing_core_answers_500_and_logs_one_line():
    lines = []
    resource = SimulatorResource(Exploding(), max_body=10, log=lines.append)
    request = DummyRequest([b"x"])
    request.method = b"POST"
    request.uri = b"/x"
    body = resource.render(request)
    assert request.responseCode == 500 and b"boom" in body
    assert len(lines) == 1 and "POST /x -> 500" in lines[0]


def test_chunked_oversized_body_413_then_keeps_serving_and_quiet(processes):
    child, port = start_listening(
        processes, "mock", "medins", "--listen", "127.0.0.1:0", "--max-body", "1000", "--quiet"
    )
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(
        "POST",
        GATEWAY,
        body=(b"x" * 100 for _ in range(50)),
        encode_chunked=True,
        headers={"Content-Type": "application/json"},
    )
    resp = conn.getresponse()
    assert resp.status == 413 and b"1000-byte limit" in resp.read()
    assert resp.getheader("Connection") == "close"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for _ in range(3):  # kept alive: three requests on one connection
        conn.request("POST", GATEWAY, body=b"{}", headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        assert resp.status == 200 and b'"infcode":-1' in resp.read()
    conn.close()
    code = child.stop(signal.SIGTERM)
    out = child.text()
    assert code == 0 and "POST" not in out and "stopped" in out


def test_ipv6_listen(processes):
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError as exc:
        pytest.skip(f"cannot bind ::1: {exc}")
    _, port = start_listening(processes, "mock", "cdc", "--listen", "[::1]:0")
    conn = http.client.HTTPConnection("::1", port, timeout=10)
    conn.request("POST", "/cdc/emr_order_item", body=b"{}", headers={"Content-Type": "application/json"})
    assert conn.getresponse().status == 200


@pytest.mark.parametrize("kind", ["medins", "fhir", "soap", "cdc"])
def test_bad_listen_is_a_usage_error(kind):
    done = subprocess.run(
        [*HARNESS, "mock", kind, "--listen", "nonsense"], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2 and "--listen" in done.stderr


def test_port_in_use_is_a_usage_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "harness", "mock", "fhir", "--listen", f"127.0.0.1:{port}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert done.returncode == 2 and "cannot listen" in done.stderr


@pytest.mark.parametrize("kind", ["medins", "fhir", "soap", "cdc"])
def test_sigterm_right_after_listening_is_a_clean_stop(processes, kind):
    proc = processes.harness("mock", kind, "--listen", "127.0.0.1:0")
    assert "listening on" in proc.stdout.readline()
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0 and "stopped" in out


def test_help_of_every_simulator_and_the_mock_group():
    for args in (
        ["mock", "--help"],
        *(["mock", kind, "--help"] for kind in ("medins", "fhir", "soap", "cdc")),
    ):
        done = subprocess.run([*HARNESS, *args], cwd=ROOT, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        assert "--listen" in done.stdout or "medins" in done.stdout
