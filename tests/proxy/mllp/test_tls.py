"""An MLLP channel over mutual TLS on both sides: the sender presents a certificate to the proxy, the
proxy presents its own to the upstream (`harness mock mllp --tls-client-ca`), and one without a
certificate or below the minimum version is refused."""

from __future__ import annotations

import socket
import ssl

import pytest

from harness.hl7v2.meta import extract
from tests.mock_mllp_process import start_mock
from tests.proxy.proxy_process import adt, proxy_log, start_proxy, write_config
from tests.tls_material import TestCA


def exchange(port: int, context: ssl.SSLContext, control_id: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(b"\x0b" + adt(control_id) + b"\x1c\r")
            data = b""
            while not data.endswith(b"\x1c\r"):
                chunk = tls.recv(65536)
                if not chunk:
                    raise ConnectionError(f"closed after {data!r}")
                data += chunk
    return data[1:-2]


def mutual_mock(processes, ca: TestCA, cert, key):
    """`harness mock mllp` asking every client for a certificate signed by `ca`."""
    tls = ["--tls-cert", str(cert), "--tls-key", str(key), "--tls-client-ca", str(ca.path)]
    return start_mock(processes, *tls)


def test_mutual_tls_to_the_sender_and_to_the_upstream(processes, tmp_path):
    ca = TestCA(tmp_path)
    server_cert, server_key = ca.issue("server")
    sender_cert, sender_key = ca.issue("his", client=True)
    proxy_cert, proxy_key = ca.issue("proxy", client=True)
    mock = mutual_mock(processes, ca, server_cert, server_key)
    config, port = write_config(
        tmp_path,
        upstream=f"127.0.0.1:{mock.port}",
        tls={"cert": str(server_cert), "key": str(server_key), "ca": str(ca.path)},
        upstream_tls={"ca": str(ca.path), "server_name": "localhost", "cert": str(proxy_cert),
                      "key": str(proxy_key), "min_version": "1.3"},
    )  # fmt: skip
    start_proxy(processes, config, port)
    assert "(TLS, client certificate required)" in proxy_log(config)
    context = ssl.create_default_context(cafile=str(ca.path))
    context.load_cert_chain(str(sender_cert), str(sender_key))
    assert extract(exchange(port, context, "MTLS1")).ack_control_id == "MTLS1"
    bare = ssl.create_default_context(cafile=str(ca.path))
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        exchange(port, bare, "MTLS2")


def test_an_upstream_requiring_a_client_certificate_refuses_a_channel_without_one(processes, tmp_path):
    ca = TestCA(tmp_path)
    server_cert, server_key = ca.issue("server")
    mock = mutual_mock(processes, ca, server_cert, server_key)
    config, port = write_config(
        tmp_path,
        upstream=f"127.0.0.1:{mock.port}",
        tls={"cert": str(server_cert), "key": str(server_key)},
        upstream_tls={"ca": str(ca.path), "server_name": "localhost"},
        on_upstream_down="nak",
    )
    start_proxy(processes, config, port)
    context = ssl.create_default_context(cafile=str(ca.path))
    reply = extract(exchange(port, context, "NOCERT"))
    assert reply.ack_code == "AR" and reply.ack_control_id == "NOCERT"  # a NAK, never a faked AA
    assert "certificate required" in proxy_log(config)  # the log says why
