"""Bounded memory and time per HTTP connection, measured on a real proxy process (RSS from /proc).

A client that does not read a 50 MB response, an upstream that does not read a 50 MB request body, and
a client trickling a head byte by byte (slowloris): the proxy's memory stays within a bound
(docs/RELIABILITY.md) and the trickling client is cut off at `head_timeout_s`, whatever it sends.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from harness.store import ExchangeFilter, Store
from tests.processes import Processes
from tests.proxy.http.recording_upstream import RecordingUpstream
from tests.proxy.http_setup import run_proxy, write_http_config

BIG = 50 * 1024 * 1024
RSS_BOUND = 24 * 1024 * 1024
"""Growth allowed for one connection moving 50 MB it cannot deliver (documented in RELIABILITY.md)."""


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class DeafUpstream:
    """Accepts connections and never reads from them (its receive window fills up)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            self.conns.append(conn)

    def close(self) -> None:
        for conn in self.conns:
            conn.close()
        self.sock.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    folder = tmp_path_factory.mktemp("http-bounds")
    procs = Processes()
    upstream = RecordingUpstream()
    deaf = DeafUpstream()
    try:
        up = f"http://127.0.0.1:{upstream.port}"
        config, ports = write_http_config(
            folder,
            {
                "fast": {"kind": "raw", "upstream": up, "capture": "fast"},
                "durable": {"kind": "raw", "upstream": up, "capture": "durable"},
                "deaf": {"kind": "raw", "upstream": f"http://127.0.0.1:{deaf.port}", "capture": "fast"},
                "strict": {"kind": "raw", "upstream": up, "head_timeout_s": 1, "body_timeout_s": 1},
            },
        )
        proc = run_proxy(procs, config, ports)
        yield {"ports": ports, "proc": proc, "store": folder / "captures.db"}
    finally:
        procs.stop_all()
        upstream.close()
        deaf.close()


def settle(pid: int, seconds: float = 3.0) -> int:
    """The highest RSS seen over `seconds` (sampled every 0.1 s)."""
    peak = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        peak = max(peak, rss(pid))
        time.sleep(0.1)
    return peak


@pytest.mark.parametrize("channel", ["fast", "durable"])
def test_a_client_that_does_not_read_a_50_mb_response_does_not_make_the_proxy_hold_it(stack, channel):
    pid = stack["proc"].pid
    before = settle(pid, 0.5)
    s = socket.create_connection(("127.0.0.1", stack["ports"][channel]), timeout=10)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    try:
        s.sendall(f"GET /slow-big/{BIG} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        grown = settle(pid) - before
        assert grown < RSS_BOUND, f"RSS grew by {grown / 2**20:.1f} MiB"
        # and the response is whole for a client that does read it after all
        s.settimeout(30)
        got = 0
        while got < BIG:
            data = s.recv(1 << 20)
            assert data
            got += len(data)
        assert got >= BIG
    finally:
        s.close()


def test_an_upstream_that_does_not_read_a_50_mb_request_body_does_not_make_the_proxy_hold_it(stack):
    pid = stack["proc"].pid
    before = settle(pid, 0.5)
    s = socket.create_connection(("127.0.0.1", stack["ports"]["deaf"]), timeout=10)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    sent = 0
    stop = threading.Event()

    def push() -> None:
        nonlocal sent
        try:
            s.sendall(f"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: {BIG}\r\n\r\n".encode())
            piece = b"y" * 65536
            while sent < BIG and not stop.is_set():
                sent += s.send(piece)
        except OSError:
            pass

    pusher = threading.Thread(target=push, daemon=True)
    pusher.start()
    try:
        grown = settle(pid) - before
        assert grown < RSS_BOUND, f"RSS grew by {grown / 2**20:.1f} MiB"
        assert sent < BIG / 2, f"the proxy took {sent} bytes of a body nobody reads"
    finally:
        stop.set()
        s.close()
        pusher.join(5)


def test_a_head_trickling_in_byte_by_byte_is_cut_off_at_head_timeout(stack):
    port = stack["ports"]["strict"]
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        got = b""
        for i in range(40):  # a header byte every 0.1 s: each one would reset an idle timeout
            try:
                s.sendall(b"X-Slow-%d: 1\r\n" % i)
            except OSError:
                break
            time.sleep(0.1)
            s.setblocking(False)
            try:
                got += s.recv(65536)
            except BlockingIOError:
                pass
            finally:
                s.setblocking(True)
            if got:
                break
    elapsed = time.monotonic() - started
    assert got.startswith(b"HTTP/1.1 408") and b"head_timeout_s" in got
    assert elapsed < 3.5
    with Store(stack["store"]) as store:
        rows = list(store.query(ExchangeFilter(channel=["strict"])))
    assert any(ex.status == 408 and "head_timeout_s" in (ex.error or "") for ex in rows)


def test_a_body_trickling_in_is_cut_off_at_body_timeout(stack):
    port = stack["ports"]["strict"]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
        for _ in range(30):
            try:
                s.sendall(b"z")
            except OSError:
                break
            time.sleep(0.1)
        s.settimeout(5)
        got = s.recv(65536)
    assert got.startswith(b"HTTP/1.1 408") and b"body_timeout_s" in got


def test_a_slow_reader_of_a_response_that_ends_the_connection_still_sees_its_end(stack):
    """Back-pressure must not keep the connection from closing after the response (Twisted does not
    close a transport while a producer is registered on it)."""
    size = 8 * 1024 * 1024
    with socket.create_connection(("127.0.0.1", stack["ports"]["fast"]), timeout=30) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.sendall(f"GET /slow-big/{size} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        time.sleep(1.5)  # the proxy's buffer towards us fills up and the upstream is paused
        got = b""
        while True:
            data = s.recv(1 << 20)
            if not data:
                break
            got += data
    head, _, body = got.partition(b"\r\n\r\n")
    assert b"Connection: close" in head and len(body) == size
