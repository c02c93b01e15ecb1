"""The proxy's reactor: socket events dispatched without Twisted's logging context, errors still
reported and the loop kept running; `harness proxy` runs on it."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
from twisted.internet.abstract import FileDescriptor
from twisted.python import log

from harness.proxy.reactor import ProxyReactor

pytestmark = pytest.mark.skipif(not hasattr(__import__("select"), "epoll"), reason="epoll is Linux-only")


class Reader(FileDescriptor):
    """Reads one end of a socket pair; `fail` makes doRead (or connectionLost) raise."""

    def __init__(self, reactor: ProxyReactor, sock: socket.socket, fail: str = "") -> None:
        super().__init__(reactor)
        self.sock = sock
        self.fail = fail
        self.got: list[bytes] = []
        self.lost: list[object] = []

    def fileno(self) -> int:
        return self.sock.fileno()

    def doRead(self) -> None:
        if "read" in self.fail:
            raise ValueError("broken handler")
        self.got.append(self.sock.recv(4096))

    def connectionLost(self, reason: object) -> None:
        self.lost.append(reason)
        if "lost" in self.fail:
            raise RuntimeError("broken connectionLost")


@pytest.fixture
def reactor():
    r = ProxyReactor()
    yield r
    r._poller.close()  # the tests' sockets are closed by then


@pytest.fixture
def logged():
    events: list[dict] = []
    log.addObserver(events.append)
    yield events
    log.removeObserver(events.append)


def spin(reactor: ProxyReactor, until, rounds: int = 50) -> None:
    for _ in range(rounds):
        if until():
            return
        reactor.doIteration(0.05)
    raise AssertionError("the event never came")


def test_reads_are_dispatched(reactor):
    a, b = socket.socketpair()
    with a, b:
        reader = Reader(reactor, a)
        reactor.addReader(reader)
        b.sendall(b"\x0bMSH|^~\\&|\x1c\r")
        spin(reactor, lambda: reader.got)
        assert reader.got == [b"\x0bMSH|^~\\&|\x1c\r"]


def test_a_failing_handler_is_logged_disconnected_and_the_loop_goes_on(reactor, logged):
    a, b = socket.socketpair()
    c, d = socket.socketpair()
    with a, b, c, d:
        bad = Reader(reactor, a, fail="read")
        good = Reader(reactor, c)
        reactor.addReader(bad)
        reactor.addReader(good)
        b.sendall(b"x")
        d.sendall(b"y")
        spin(reactor, lambda: bad.lost and good.got)
        assert "broken handler" in str(bad.lost[0])
        assert good.got == [b"y"]
        assert any("broken handler" in str(e.get("failure", "")) for e in logged if e.get("isError"))


def test_an_error_while_disconnecting_is_logged_not_raised(reactor, logged):
    a, b = socket.socketpair()
    c, d = socket.socketpair()
    with a, b, c, d:
        bad = Reader(reactor, a, fail="read lost")
        reactor.addReader(bad)
        b.sendall(b"x")
        spin(reactor, lambda: bad.lost)  # the RuntimeError does not escape doIteration
        good = Reader(reactor, c)
        reactor.addReader(good)
        d.sendall(b"z")
        spin(reactor, lambda: good.got)
        assert any("broken connectionLost" in str(e.get("failure", "")) for e in logged if e.get("isError"))


def python(code: str) -> str:
    """What a fresh interpreter prints for `code` (the reactor is chosen once per process)."""
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout.strip()


def test_the_proxy_process_installs_it():
    # what `harness proxy` has imported by the time it runs the proxy
    modules = ("harness.cli.proxy", "harness.proxy.config", "harness.proxy.endpoints", "harness.proxy.server")
    imports = f"import {', '.join(modules)}\n"
    assert python(imports + "from harness.proxy.reactor import install\nprint(type(install()).__name__)") == (
        "ProxyReactor"
    )


def test_an_installed_reactor_is_kept():
    code = "from twisted.internet import reactor\nfrom harness.proxy.reactor import install\n"
    assert python(code + "print(install() is reactor)") == "True"
