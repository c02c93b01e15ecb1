"""Memory and connections stay bounded whatever senders do, shown with real processes on loopback.

- A sender that never reads its ACKs: the proxy stops reading it (and the upstream) once the reply
  buffer is full; memory stays bounded; when it reads again, every ACK arrives, in order.
- Unfinished frames: given up after frame_timeout_s (first bytes captured, connection closed), memory
  given back.
- max_connections: further senders are refused with a capture row; those accepted keep working.
- The descriptor limit: new senders are refused before it is reached, and every sender already
  accepted still gets its upstream connection.
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import threading
import time
from pathlib import Path

from harness.hl7v2.meta import extract
from harness.mllp import Frame, MLLPDecoder
from harness.store import ExchangeFilter, Store
from tests.messages import adt
from tests.mock_mllp_process import start_mock
from tests.proxy.proxy_process import Sender, proxy_log, start_proxy, write_config

MB = 1024 * 1024


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def read_frame(sock: socket.socket) -> bytes | None:
    """The first frame the peer sends on sock; None when it closes first."""
    decoder = MLLPDecoder()
    while data := sock.recv(65536):
        for event in decoder.feed(data):
            if isinstance(event, Frame):
                return event.payload
    return None


def stored(path: Path) -> list:
    with Store(path) as store:
        return list(store.query(ExchangeFilter(), bodies=True))


def stop(proxy) -> None:
    os.killpg(proxy.pid, signal.SIGTERM)
    proxy.wait(timeout=30)


def until(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def test_a_sender_that_never_reads_its_acks_cannot_grow_the_proxy(processes, tmp_path):
    mock = start_mock(processes)
    config, port = write_config(tmp_path, upstream=f"127.0.0.1:{mock.port}", capture="fast")
    proxy = start_proxy(processes, config, port)
    before = rss(proxy.pid)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)  # before connect, so it holds
    sock.connect(("127.0.0.1", port))
    count = 20_000
    frames = [b"\x0b" + adt(f"N{i:06d}", size=4096) + b"\x1c\r" for i in range(count)]
    sent = {"bytes": 0, "messages": 0}

    def blast() -> None:
        try:
            for data in frames:
                sock.sendall(data)
                sent["bytes"] += len(data)
                sent["messages"] += 1
        except OSError:
            pass

    writer = threading.Thread(target=blast, daemon=True)
    writer.start()
    writer.join(timeout=8)  # the proxy stops reading long before 80 MB are through
    grown = rss(proxy.pid) - before
    # ACKs the kernel's socket buffers can hold are not the proxy's memory; past them it stops reading
    assert writer.is_alive(), "the proxy read everything the sender wrote without its ACKs being read"
    assert grown < 48 * MB, f"proxy grew {grown / MB:.0f} MB after {sent['bytes'] / MB:.0f} MB sent"
    # the sender reads again: every ACK comes, in order, and the rest of the stream flows
    decoder = MLLPDecoder()
    acks: list[str] = []
    sock.settimeout(60)
    while len(acks) < count:
        data = sock.recv(1 << 20)
        assert data, f"connection closed after {len(acks)} ACKs"
        acks += [extract(e.payload).ack_control_id for e in decoder.feed(data) if isinstance(e, Frame)]
    writer.join(timeout=30)
    sock.close()
    assert acks == [f"N{i:06d}" for i in range(count)]
    stop(proxy)


def test_unfinished_frames_are_given_up_and_their_memory_returned(processes, tmp_path):
    mock = start_mock(processes)
    config, port = write_config(tmp_path, upstream=f"127.0.0.1:{mock.port}", frame_timeout_s=1)
    proxy = start_proxy(processes, config, port)
    before = rss(proxy.pid)
    socks = []
    chunk = b"x" * MB
    for i in range(8):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"\x0b" + adt(f"U{i}"))
        for _ in range(12):  # 12 MiB of a frame that never ends
            s.sendall(chunk)
        socks.append(s)
    for s in socks:  # the proxy closes each after frame_timeout_s
        s.settimeout(20)
        assert s.recv(10) == b""
        s.close()
    until(lambda: rss(proxy.pid) - before < 40 * MB)
    good = Sender(port)
    assert extract(good.exchange(adt("OK1"))).ack_code == "AA"  # the channel keeps working
    good.close()
    stop(proxy)
    rows = [ex for ex in stored(tmp_path / "captures.db") if ex.outcome == "malformed"]
    assert len(rows) == 8
    assert all(len(ex.request) == 65536 and "frame_timeout_s" in " ".join(ex.notes) for ex in rows)


def test_max_connections_refuses_newcomers_with_a_record_and_keeps_the_others(processes, tmp_path):
    mock = start_mock(processes)
    config, port = write_config(tmp_path, upstream=f"127.0.0.1:{mock.port}", max_connections=3)
    proxy = start_proxy(processes, config, port)
    kept = [Sender(port) for _ in range(3)]
    for i, s in enumerate(kept):
        assert extract(s.exchange(adt(f"K{i}"))).ack_code == "AA"
    refused = []
    for _ in range(4):
        s = socket.create_connection(("127.0.0.1", port))
        s.settimeout(10)
        try:
            refused.append(s.recv(10))
        except ConnectionResetError:
            refused.append(b"")
        s.close()
    assert refused == [b""] * 4
    for i, s in enumerate(kept):  # the accepted ones are untouched
        assert extract(s.exchange(adt(f"K{i}b"))).ack_code == "AA"
        s.close()
    stop(proxy)
    rows = stored(tmp_path / "captures.db")
    refusals = [ex for ex in rows if ex.error and "max_connections (3)" in ex.error]
    assert len(refusals) == 4 and all(ex.client_addr for ex in refusals)


def test_at_the_descriptor_limit_new_senders_are_refused_and_accepted_ones_still_reach_the_upstream(
    processes, tmp_path
):
    mock = start_mock(processes)
    config, port = write_config(tmp_path, upstream=f"127.0.0.1:{mock.port}")

    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (96, 96))

    out = open(config.with_name("proxy.log"), "a")  # noqa: SIM115 - the child writes to it
    proxy = processes.harness("proxy", "--config", str(config), stdout=out, preexec_fn=low_limit)
    out.close()
    until(lambda: f"listening on 127.0.0.1:{port}" in proxy_log(config))
    opened, refused = [], 0
    for _ in range(60):  # more senders than 96 descriptors allow at two sockets each
        try:
            s = socket.create_connection(("127.0.0.1", port))
        except ConnectionResetError:  # refused before the handshake was even through
            refused += 1
            continue
        s.settimeout(10)
        opened.append(s)
    accepted = []
    for i, s in enumerate(opened):
        try:
            s.sendall(b"\x0b" + adt(f"D{i:02d}") + b"\x1c\r")
            ack = read_frame(s)
        except OSError:
            ack = None
        if ack is None:
            refused += 1
        else:
            assert extract(ack).ack_code == "AA"  # its upstream connection was there for it
            accepted.append(i)
    for s in opened:
        s.close()
    assert refused > 0 and len(accepted) >= 10
    assert "Too many open files" not in proxy_log(config)
    stop(proxy)
