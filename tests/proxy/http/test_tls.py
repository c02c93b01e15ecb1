"""HTTP channels over TLS with peers nobody here wrote (curl, requests, Python's ssl client): ALPN,
mutual TLS on the listener and towards the upstream, minimum version, cipher list, start-up errors.

One proxy child process serves every channel; its upstream is the FHIR simulator, itself over mutual
TLS, so every exchange crosses two TLS hops."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess

import pytest
import requests

from tests.browser import chromium, needs_chromium
from tests.childproc import start_listening
from tests.processes import HARNESS, ROOT
from tests.proxy.http_setup import run_proxy, write_http_config
from tests.tls_material import TestCA

needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed (Debian: curl)")


@pytest.fixture(scope="module")
def tls_stack(tmp_path_factory, request):
    from tests.processes import Processes

    folder = tmp_path_factory.mktemp("http-tls")
    ca = TestCA(folder)
    server_cert, server_key = ca.issue("server")
    client_cert, client_key = ca.issue("his-client", client=True)
    proxy_client = ca.issue("proxy-client", client=True)
    procs = Processes()
    try:
        _, fhir = start_listening(
            procs, "mock", "fhir", "--listen", "127.0.0.1:0", "--tls-cert", str(server_cert),
            "--tls-key", str(server_key), "--tls-client-ca", str(ca.path),
        )  # fmt: skip
        listener = {"cert": str(server_cert), "key": str(server_key)}
        upstream = {
            "upstream": f"https://localhost:{fhir}",
            "upstream_tls": {"ca": str(ca.path), "cert": str(proxy_client[0]), "key": str(proxy_client[1])},
        }
        config, ports = write_http_config(
            folder,
            {
                "plain_tls": {"kind": "fhir", "tls": listener, **upstream},
                "mutual": {"kind": "fhir", "tls": {**listener, "ca": str(ca.path)}, **upstream},
                "tls13": {"kind": "fhir", "tls": {**listener, "min_version": "1.3"}, **upstream},
                "one_cipher": {
                    "kind": "fhir",
                    "tls": {**listener, "ciphers": "ECDHE-ECDSA-AES128-GCM-SHA256"},
                    **upstream,
                },
                "no_client_cert": {
                    "kind": "fhir",
                    "tls": listener,
                    "upstream": f"https://localhost:{fhir}",
                    "upstream_tls": {"ca": str(ca.path)},
                },
            },
        )
        run_proxy(procs, config, ports)
        yield {
            "ports": ports,
            "ca": ca,
            "client": (str(client_cert), str(client_key)),
            "folder": folder,
        }
    finally:
        procs.stop_all()


def url(stack, channel: str, path: str = "/fhir/metadata") -> str:
    return f"https://localhost:{stack['ports'][channel]}{path}"


def client_context(stack, *, cert: bool = False, maximum=None, minimum=None, ciphers=None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(stack["ca"].path))
    if cert:
        context.load_cert_chain(*stack["client"])
    if ciphers:
        context.set_ciphers(ciphers)
    if minimum is not None:
        context.minimum_version = minimum
    if maximum is not None:
        context.maximum_version = maximum
    return context


def handshake(stack, channel: str, context: ssl.SSLContext) -> str:
    """The TLS version agreed with the channel's listener, after one request answered over it."""
    with socket.create_connection(("127.0.0.1", stack["ports"][channel]), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(b"GET /fhir/metadata HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            reply = b""
            while chunk := tls.recv(65536):
                reply += chunk
            assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
            return tls.version()


@needs_curl
def test_curl_offering_alpn_gets_http_1_1_instead_of_an_internal_error_alert(tls_stack):
    done = subprocess.run(
        ["curl", "-sS", "--cacert", str(tls_stack["ca"].path), "-o", "/dev/null",
         "-w", "%{http_code} %{http_version}", url(tls_stack, "plain_tls")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == "200 1.1"
    verbose = subprocess.run(
        ["curl", "-sv", "--http2", "--cacert", str(tls_stack["ca"].path), "-o", "/dev/null",
         url(tls_stack, "plain_tls")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert "ALPN: server accepted http/1.1" in verbose.stderr or "ALPN, server accepted to use http/1.1" in (
        verbose.stderr
    ), verbose.stderr


@needs_chromium
def test_headless_chromium_reads_an_https_channel(tls_stack, tmp_path):
    # the test CA is not in Chromium's store; what is tested is the handshake with a browser's ALPN
    proc = chromium(tmp_path, url(tls_stack, "plain_tls"), "--ignore-certificate-errors", "--dump-dom")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "CapabilityStatement" in proc.stdout, proc.stderr[-2000:]


def test_a_client_offering_only_h2_still_gets_http_1_1_without_alpn(tls_stack):
    context = client_context(tls_stack)
    context.set_alpn_protocols(["h2"])
    with socket.create_connection(("127.0.0.1", tls_stack["ports"]["plain_tls"]), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            assert tls.selected_alpn_protocol() is None


def test_requests_through_two_tls_hops_with_a_client_certificate_upstream(tls_stack):
    answer = requests.get(url(tls_stack, "plain_tls"), verify=str(tls_stack["ca"].path), timeout=20)
    assert answer.status_code == 200 and answer.json()["resourceType"] == "CapabilityStatement"


def test_an_upstream_asking_for_a_client_certificate_refuses_a_channel_without_one(tls_stack):
    answer = requests.get(url(tls_stack, "no_client_cert"), verify=str(tls_stack["ca"].path), timeout=20)
    assert answer.status_code == 502  # never a success faked on the upstream's behalf


def test_mutual_tls_listener_takes_a_client_certificate_and_refuses_a_client_without_one(tls_stack):
    ca = str(tls_stack["ca"].path)
    answer = requests.get(url(tls_stack, "mutual"), verify=ca, cert=tls_stack["client"], timeout=20)
    assert answer.status_code == 200
    with pytest.raises(requests.exceptions.ConnectionError):  # SSLError or a reset, per TLS version
        requests.get(url(tls_stack, "mutual"), verify=ca, timeout=20)


@needs_curl
def test_curl_without_a_client_certificate_is_refused_by_a_mutual_tls_listener(tls_stack):
    ca = str(tls_stack["ca"].path)
    refused = subprocess.run(
        ["curl", "-sS", "--cacert", ca, "-o", "/dev/null", url(tls_stack, "mutual")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert refused.returncode != 0
    cert, key = tls_stack["client"]
    accepted = subprocess.run(
        ["curl", "-sS", "--cacert", ca, "--cert", cert, "--key", key, "-o", "/dev/null", "-w", "%{http_code}",
         url(tls_stack, "mutual")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert accepted.returncode == 0 and accepted.stdout == "200", accepted.stderr


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_a_tls_1_1_only_client_is_refused_by_the_default_minimum(tls_stack):
    old = client_context(tls_stack, maximum=ssl.TLSVersion.TLSv1_1, minimum=ssl.TLSVersion.TLSv1)
    old.set_ciphers("DEFAULT:@SECLEVEL=0")  # let the client offer 1.1 at all
    with pytest.raises(ssl.SSLError):
        handshake(tls_stack, "plain_tls", old)
    assert handshake(tls_stack, "plain_tls", client_context(tls_stack)) == "TLSv1.3"
    assert handshake(tls_stack, "plain_tls", client_context(tls_stack, maximum=ssl.TLSVersion.TLSv1_2)) == (
        "TLSv1.2"
    )


def test_min_version_1_3_refuses_a_tls_1_2_client(tls_stack):
    with pytest.raises(ssl.SSLError):
        handshake(tls_stack, "tls13", client_context(tls_stack, maximum=ssl.TLSVersion.TLSv1_2))
    assert handshake(tls_stack, "tls13", client_context(tls_stack)) == "TLSv1.3"


def test_the_cipher_list_is_what_the_listener_accepts_below_tls_1_3(tls_stack):
    tls12 = ssl.TLSVersion.TLSv1_2
    other = client_context(tls_stack, maximum=tls12, ciphers="ECDHE-ECDSA-CHACHA20-POLY1305")
    with pytest.raises(ssl.SSLError):
        handshake(tls_stack, "one_cipher", other)
    listed = client_context(tls_stack, maximum=tls12, ciphers="ECDHE-ECDSA-AES128-GCM-SHA256")
    assert handshake(tls_stack, "one_cipher", listed) == "TLSv1.2"
    assert handshake(tls_stack, "plain_tls", other) == "TLSv1.2"  # the default list has it


def _start_error(tmp_path, tls: dict) -> str:
    """What `harness proxy` says when it cannot start; `--check` must say the same without starting."""
    config, _ = write_http_config(
        tmp_path, {"bad": {"kind": "raw", "upstream": "http://127.0.0.1:1", "tls": tls}}
    )
    said = []
    for extra in ([], ["--check"]):
        done = subprocess.run(
            [*HARNESS, "proxy", "--config", str(config), *extra],
            capture_output=True, text=True, timeout=60, cwd=ROOT,
        )  # fmt: skip
        assert done.returncode == 2, done.stdout + done.stderr
        assert "Traceback" not in done.stderr
        said.append(done.stderr.rpartition("channels.bad.")[2])
    assert said[0] == said[1]
    return done.stderr


def test_a_mismatched_key_or_a_bad_cipher_list_stops_the_proxy_at_start_naming_the_setting(tmp_path):
    ca = TestCA(tmp_path)
    cert, _ = ca.issue("server")
    _, other_key = ca.issue("other")
    message = _start_error(tmp_path, {"cert": str(cert), "key": str(other_key)})
    assert "channels.bad.tls.key" in message and "does not belong to the certificate" in message
    _, key = ca.issue("server2")
    cert2 = tmp_path / "server2.crt"
    message = _start_error(tmp_path, {"cert": str(cert2), "key": str(key), "ciphers": "NO-SUCH-CIPHER"})
    assert "channels.bad.tls.ciphers" in message and "NO-SUCH-CIPHER" in message
