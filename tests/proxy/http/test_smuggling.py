"""Request smuggling and response poisoning through a real proxy process, in durable and fast mode.

The upstream reads requests with h11 and records each one; every answer names the request it answers.
For every known smuggling case: the sender gets a refusal, the capture has it as `malformed`, the
upstream sees exactly the requests that were captured as forwarded (never the smuggled one), and a
client on another connection gets the answer to its own request, not to someone else's.
"""

from __future__ import annotations

import json
import socket
import time

import pytest

from harness.http_wire import Body, End, Head, MessageReader
from harness.store import ExchangeFilter, Store
from tests.processes import Processes
from tests.proxy.http.recording_upstream import RecordingUpstream
from tests.proxy.http_setup import run_proxy, write_http_config

H = b"POST /a HTTP/1.1\r\nHost: x\r\n"
SMUGGLED = b"GET /admin HTTP/1.1\r\nHost: x\r\n\r\n"
CASES = {
    "connection-names-content-length": H
    + b"Content-Length: %d\r\nConnection: Content-Length\r\n\r\n" % len(SMUGGLED)
    + SMUGGLED,
    "connection-names-transfer-encoding": H
    + b"Transfer-Encoding: chunked\r\nConnection: Transfer-Encoding\r\n\r\n0\r\n\r\n"
    + SMUGGLED,
    "cl-and-te": H + b"Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "te-and-cl": H + b"Transfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "duplicate-lengths": H + b"Content-Length: 0\r\nContent-Length: %d\r\n\r\n" % len(SMUGGLED) + SMUGGLED,
    "superscript-length": H + "Content-Length: ²\r\n\r\nab".encode() + SMUGGLED,
    "chunk-size-0x2": H + b"Transfer-Encoding: chunked\r\n\r\n0x2\r\nab\r\n0\r\n\r\n" + SMUGGLED,
    "chunk-size-+2": H + b"Transfer-Encoding: chunked\r\n\r\n+2\r\nab\r\n0\r\n\r\n" + SMUGGLED,
    "chunk-size-0_2": H + b"Transfer-Encoding: chunked\r\n\r\n0_2\r\nab\r\n0\r\n\r\n" + SMUGGLED,
    "chunk-size-spaces": H + b"Transfer-Encoding: chunked\r\n\r\n 2 \r\nab\r\n0\r\n\r\n" + SMUGGLED,
    "chunk-size--0": H + b"Transfer-Encoding: chunked\r\n\r\n-0\r\n\r\n" + SMUGGLED,
    "bare-cr": H + b"X: a\rTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n" + SMUGGLED,
    "bare-lf": b"POST /a HTTP/1.1\nHost: x\nContent-Length: 0\n\n" + SMUGGLED,
    "nul-in-value": H + b"X: a\x00b\r\nContent-Length: 0\r\n\r\n" + SMUGGLED,
    "obs-fold": H + b"X: a\r\n Transfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n" + SMUGGLED,
}


@pytest.fixture(scope="module", params=["durable", "fast"])
def stack(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"smuggle-{request.param}")
    procs = Processes()
    upstream = RecordingUpstream()
    try:
        config, ports = write_http_config(
            folder,
            {
                "raw": {
                    "kind": "raw",
                    "upstream": f"http://127.0.0.1:{upstream.port}",
                    "capture": request.param,
                    "pool_size": 1,  # one shared upstream connection: the one poisoning would use
                }
            },
        )
        run_proxy(procs, config, ports)
        yield {
            "port": ports["raw"],
            "store": folder / "captures.db",
            "upstream": upstream,
            "mode": request.param,
        }
    finally:
        procs.stop_all()
        upstream.close()


def exchange(port: int, data: bytes, timeout: float = 10.0) -> list[tuple[int, bytes]]:
    """Send `data` on a fresh connection, read until the proxy closes or goes quiet; (status, body) of
    each response read."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        got = b""
        s.settimeout(1.0)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                more = s.recv(65536)
            except TimeoutError:
                break
            except ConnectionResetError:
                break
            if not more:
                break
            got += more
    reader = MessageReader(request=False)
    answers: list[tuple[int, bytes]] = []
    status, body = 0, b""
    for event in reader.feed(got) + reader.close():
        if isinstance(event, Head):
            status, body = event.status, b""
        elif isinstance(event, Body):
            body += event.data
        elif isinstance(event, End):
            answers.append((status, body))
    return answers


def own(port: int, path: str) -> None:
    """A client on its own connection gets the answer to its own request."""
    answers = exchange(port, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    assert [(s, json.loads(b)) for s, b in answers] == [(200, {"answer_to": path})], answers


def rows(stack, ready) -> list:
    deadline = time.monotonic() + 30
    while True:
        with Store(stack["store"]) as store:
            got = list(store.query(ExchangeFilter(channel=["raw"])))
        if ready(got) or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


@pytest.mark.parametrize("case", sorted(CASES))
def test_smuggling_attempt_is_refused_captured_and_never_reaches_the_upstream(stack, case):
    port = stack["port"]
    own(port, f"/before-{case}")
    answers = exchange(port, CASES[case])
    assert len(answers) == 1 and answers[0][0] in (400, 501), answers
    own(port, f"/after-{case}")
    got = rows(
        stack,
        lambda got: any(ex.outcome == "malformed" and ex.request.startswith(CASES[case][:20]) for ex in got),
    )
    refused = [ex for ex in got if ex.outcome == "malformed" and ex.path in ("/a", None)]
    assert refused and all(ex.status in (400, 501) for ex in refused)
    got = rows(
        stack, lambda got: len([e for e in got if e.outcome != "malformed"]) >= len(stack["upstream"].seen)
    )
    forwarded = [ex.path for ex in got if ex.outcome != "malformed"]
    seen = stack["upstream"].targets()
    assert "/admin" not in seen and "/a" not in seen
    assert sorted(seen) == sorted(forwarded)  # the upstream saw exactly what was captured as forwarded
    assert stack["upstream"].rejected == []


def test_pipelined_clients_each_get_their_own_answers_in_order(stack):
    port = stack["port"]
    data = b"".join(f"GET /p{i} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for i in range(20))
    answers = exchange(port, data + b"GET /p-last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert [json.loads(b)["answer_to"] for _, b in answers] == [f"/p{i}" for i in range(20)] + ["/p-last"]


def test_an_ambiguous_response_becomes_502_and_poisons_nobody(stack):
    port = stack["port"]
    connections = stack["upstream"].connections
    answers = exchange(port, b"GET /poison/1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert len(answers) == 1 and answers[0][0] == 502 and b"Content-Length" in answers[0][1], answers
    for i in range(3):  # the next clients get their own answers, on a connection not the poisoned one
        own(port, f"/next-{i}")
    assert stack["upstream"].connections > connections
    got = rows(stack, lambda got: any(ex.path == "/poison/1" for ex in got))
    ex = next(e for e in got if e.path == "/poison/1")
    assert ex.outcome == "error" and ex.status == 502 and "unreadable" in ex.error
