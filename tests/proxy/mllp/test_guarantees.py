"""The proxy's guarantees, each shown with real processes on loopback.

- python-hl7's MLLPClient -> proxy -> hl7apy's MLLPServer: every ACK relayed, every exchange captured,
  the upstream receives the exact bytes sent.
- SIGKILL mid-stream: durable loses nothing the sender was told about; fast loses at most the open
  group-commit window.
- The upstream killed and restarted mid-stream: no AA reaches the sender that the upstream did not
  send, and the proxy recovers by itself.
- Seeded garbage on one connection does not disturb a good stream on another; memory stays bounded.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import threading
import time
from pathlib import Path

import hl7.client
import pytest

from harness.exchange import Exchange
from harness.hl7v2.meta import extract
from harness.store import ExchangeFilter, Store, crypto
from harness.store.crypto import Keyring
from tests.mock_mllp_process import start_mock
from tests.ports import free_port
from tests.proxy.proxy_process import (
    Sender,
    adt,
    start_hl7apy_upstream,
    start_proxy,
    store_key,
    write_config,
)


def stored(path: Path, key: Path | None = None) -> list[Exchange]:
    store = Store(path, keys=Keyring([crypto.load_key_file(key)], [key]) if key else None)
    try:
        return list(store.query(ExchangeFilter()))
    finally:
        store.close()


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def upstream_log(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_python_hl7_client_through_proxy_to_hl7apy_server_500_messages(processes, tmp_path):
    up_port = free_port()
    log = tmp_path / "upstream.jsonl"
    start_hl7apy_upstream(processes, up_port, log)
    # hl7apy's server closes after each reply; declared, so no message can be written on a closing
    # connection (learning it takes one close, racing the next message on a loaded machine)
    config, port = write_config(
        tmp_path, upstream=f"127.0.0.1:{up_port}", capture="fast", upstream_connection="per_message"
    )
    proxy = start_proxy(processes, config, port)
    sent: dict[str, bytes] = {}
    acks: list[bytes] = []
    with hl7.client.MLLPClient("127.0.0.1", port) as client:
        for i in range(500):
            control_id = f"G{i:05d}"
            msg = adt(control_id, size=400 + i % 300)
            sent[control_id] = msg
            acks.append(client.send_message(msg.decode("ascii")))
    # every ACK relayed, each for its own message
    got = [extract(a.strip(b"\x0b\x1c\r")) for a in acks]
    assert [(m.ack_code, m.ack_control_id) for m in got] == [("AA", cid) for cid in sent]
    # the upstream received exactly the bytes sent, and sent exactly the ACKs the client got
    received = upstream_log(log)
    assert [r["control_id"] for r in received] == list(sent)
    assert all(r["request"].encode() == sent[r["control_id"]] for r in received)
    assert [b"\x0b" + r["ack"].encode() + b"\x1c\r" for r in received] == acks
    # 500 exchanges captured with the right control ids, request and response bytes
    os.killpg(proxy.pid, signal.SIGTERM)
    assert proxy.wait(timeout=60) == 0
    rows = stored(tmp_path / "captures.db")
    assert [ex.control_id for ex in rows] == list(sent)
    assert all(ex.outcome == "ok" and ex.ack_code == "AA" for ex in rows)
    assert all(ex.request == sent[ex.control_id] for ex in rows)
    assert [b"\x0b" + ex.response + b"\x1c\r" for ex in rows] == acks


def _stream_until_killed(port: int, proxy, kill_after: int, prefix: str) -> list[tuple[str, float]]:
    """Send messages one by one; SIGKILL the proxy after `kill_after` ACKs; (control id, ack time) list."""
    acked: list[tuple[str, float]] = []
    sender = Sender(port, timeout=10)
    i = 0
    try:
        while True:
            control_id = f"{prefix}{i:05d}"
            try:
                reply = sender.exchange(adt(control_id, size=800))
            except OSError:
                break
            if reply is None:
                break
            assert extract(reply).ack_control_id == control_id
            acked.append((control_id, time.monotonic()))
            i += 1
            if i == kill_after:
                threading.Thread(target=os.killpg, args=(proxy.pid, signal.SIGKILL)).start()
    finally:
        sender.close()
    return acked


def sealed_only(path: Path) -> None:
    """No part of a captured message is in the store file or its WAL in clear."""
    raw = b"".join(Path(f"{path}{s}").read_bytes() for s in ("", "-wal") if Path(f"{path}{s}").exists())
    assert len(raw) > 0
    assert [s for s in (b"ZHANG^SAN", b"KUNMING RD 1", b"MSH|^~\\&", b"MSA|AA", b"x" * 64) if s in raw] == []


@pytest.mark.parametrize("algorithm", [None, "aes-256-gcm", "sm4-gcm"], ids=["clear", "aes", "sm4"])
def test_sigkill_in_durable_mode_loses_no_acknowledged_exchange(processes, tmp_path, algorithm):
    up_port = start_mock(processes).port
    encryption, key = store_key(tmp_path, algorithm)
    config, port = write_config(
        tmp_path, upstream=f"127.0.0.1:{up_port}", capture="durable", encryption=encryption
    )
    proxy = start_proxy(processes, config, port)
    acked = _stream_until_killed(port, proxy, kill_after=150, prefix="D")
    proxy.wait(timeout=60)
    assert proxy.returncode == -signal.SIGKILL
    assert len(acked) >= 150
    rows = stored(tmp_path / "captures.db", key)
    in_store = {ex.control_id for ex in rows}
    missing = [cid for cid, _ in acked if cid not in in_store]
    assert missing == []
    assert all(ex.request == adt(ex.control_id, size=800) for ex in rows)
    if key is not None:
        sealed_only(tmp_path / "captures.db")


@pytest.mark.parametrize("algorithm", [None, "aes-256-gcm"], ids=["clear", "aes"])
def test_sigkill_in_fast_mode_loses_at_most_the_group_commit_window(processes, tmp_path, algorithm):
    up_port = start_mock(processes).port
    encryption, key = store_key(tmp_path, algorithm)
    config, port = write_config(
        tmp_path, upstream=f"127.0.0.1:{up_port}", capture="fast", encryption=encryption
    )
    proxy = start_proxy(processes, config, port)
    acked = _stream_until_killed(port, proxy, kill_after=600, prefix="F")
    proxy.wait(timeout=60)
    killed_at = acked[-1][1]
    in_store = {ex.control_id for ex in stored(tmp_path / "captures.db", key)}
    missing = [(cid, t) for cid, t in acked if cid not in in_store]
    # what is missing is the most recent tail: acknowledged within the window (100 ms, plus the
    # time a commit takes and scheduling slack on a shared machine) before the kill
    window_s = 1.0
    recent = [cid for cid, t in acked if t >= killed_at - window_s]
    assert all(t >= killed_at - window_s for _, t in missing), missing[:5]
    assert len(missing) <= len(recent)
    assert len(in_store) >= len(acked) - len(recent)
    if key is not None:
        sealed_only(tmp_path / "captures.db")


def test_upstream_killed_and_restarted_no_fake_aa_and_recovery(processes, tmp_path):
    up_port = free_port()
    log = tmp_path / "upstream.jsonl"
    upstream = start_hl7apy_upstream(processes, up_port, log)
    config, port = write_config(
        tmp_path, upstream=f"127.0.0.1:{up_port}", capture="fast", on_upstream_down="nak", ack_timeout_s=3
    )
    start_proxy(processes, config, port)
    sender = Sender(port, timeout=10)
    replies: list[tuple[str, bytes | None]] = []
    for i in range(240):
        if i == 80:
            os.killpg(upstream.pid, signal.SIGKILL)
            upstream.wait(timeout=60)
        if i == 160:
            upstream = start_hl7apy_upstream(processes, up_port, log)
        control_id = f"U{i:05d}"
        try:
            reply = sender.exchange(adt(control_id))
        except OSError:
            reply = None
        if reply is None:
            sender.connect()
        replies.append((control_id, reply))
    sender.close()
    sent_by_upstream = {entry["ack"].encode() for entry in upstream_log(log)}
    accepted = [(cid, r) for cid, r in replies if r is not None and extract(r).ack_code in ("AA", "CA")]
    # every accept the sender saw is byte for byte an ACK the upstream sent, for that very message
    for cid, reply in accepted:
        assert reply in sent_by_upstream, f"{cid}: an accept the upstream never sent"
        assert extract(reply).ack_control_id == cid
    down = [r for cid, r in replies[80:160]]
    assert all(r is None or extract(r).ack_code == "AR" for r in down)
    assert any(r is not None and b"upstream unavailable" in r for r in down)
    # recovered by itself: after the restart every message is accepted again
    assert all(r is not None and extract(r).ack_code == "AA" for _, r in replies[162:])
    assert all(r is not None and extract(r).ack_code == "AA" for _, r in replies[:80])


def test_seeded_garbage_on_one_connection_leaves_a_good_stream_alone(processes, tmp_path):
    up_port = start_mock(processes).port
    config, port = write_config(
        tmp_path, upstream=f"127.0.0.1:{up_port}", capture="fast", max_frame_bytes=65536
    )
    proxy = start_proxy(processes, config, port)
    warm = Sender(port)
    for i in range(50):
        assert extract(warm.exchange(adt(f"W{i:04d}"))).ack_code == "AA"
    warm.close()
    rss_before = rss_kb(proxy.pid)

    rng = random.Random(20260101)
    stop = threading.Event()
    garbage_sent = [0]
    chunks = [0]  # chunks sent; the good stream keeps pace with it, so the two overlap on any machine
    progress = threading.Condition()
    garbage_done = [False]

    def garbage() -> None:
        sock = socket.create_connection(("127.0.0.1", port))
        sock.settimeout(0.2)
        try:
            for _ in range(400):
                if stop.is_set():
                    break
                size = rng.randint(1, 8192)
                chunk = bytearray(rng.getrandbits(8) for _ in range(size))
                if rng.random() < 0.3:
                    chunk[rng.randrange(size)] = 0x0B
                if rng.random() < 0.3:
                    chunk[rng.randrange(size)] = 0x1C
                try:
                    sock.sendall(bytes(chunk))
                    garbage_sent[0] += size
                    try:
                        sock.recv(65536)  # drain any AR the proxy sends back
                    except TimeoutError:
                        pass
                except OSError:
                    sock.close()
                    sock = socket.create_connection(("127.0.0.1", port))
                    sock.settimeout(0.2)
                with progress:
                    chunks[0] += 1
                    progress.notify_all()
        finally:
            sock.close()
            with progress:
                garbage_done[0] = True
                progress.notify_all()

    thread = threading.Thread(target=garbage)
    thread.start()
    good = Sender(port)
    try:
        for i in range(300):
            with progress:  # a good message for every third chunk of garbage, whoever runs faster
                progress.wait_for(lambda n=i // 3: chunks[0] >= n or garbage_done[0], timeout=60)
            control_id = f"OK{i:05d}"
            reply = good.exchange(adt(control_id, size=600))
            meta = extract(reply)
            assert (meta.ack_code, meta.ack_control_id) == ("AA", control_id)
    finally:
        stop.set()
        thread.join(timeout=10)
        good.close()
    assert garbage_sent[0] > 100_000
    assert proxy.poll() is None
    rss_after = rss_kb(proxy.pid)
    assert rss_after - rss_before < 64 * 1024, (rss_before, rss_after)
    # still serving, and the garbage is on record
    check = Sender(port)
    assert extract(check.exchange(adt("AFTER1"))).ack_code == "AA"
    check.close()
    os.killpg(proxy.pid, signal.SIGTERM)
    proxy.wait(timeout=60)
    rows = stored(tmp_path / "captures.db")
    good_rows = [ex for ex in rows if (ex.control_id or "").startswith("OK")]
    assert len(good_rows) == 300 and all(ex.outcome == "ok" for ex in good_rows)
    assert sum(ex.outcome == "malformed" for ex in rows) > 0
