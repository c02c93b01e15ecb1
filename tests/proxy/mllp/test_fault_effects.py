"""Every fault action seen from the sender's side, through a real proxy process and a real upstream.

One `harness mock mllp` upstream (AE for PID-3.1 starting with 9, AA otherwise) and one `harness proxy`
serve the whole module; each test adds its rule through the admin API, sends with raw sockets or
`harness.mllp_client`, looks at what the sender got and what the upstream logged, and clears the rules.
Times are only compared with generous lower bounds (a delay is at least what was asked) or with a
baseline measured in the same test.
"""

from __future__ import annotations

import json
import random
import re
import socket
import subprocess
import time
import urllib.request
import uuid

import pytest

from harness.mllp_client import MLLPClient
from harness.proxy.faults.actions.corrupt import flip_byte
from tests.childproc import Child
from tests.messages import adt
from tests.mock_mllp_process import MockMLLP, start_mock
from tests.processes import HARNESS, ROOT, Processes

TOKEN = "fault-effects-token"
ACK_TIMEOUT_S = 1.0
VT, FS, CR = b"\x0b", b"\x1c", b"\r"


def message(control_id: str, pid3: str = "100001", code: str = "ADT^A01^ADT_A01") -> bytes:
    return adt(control_id, message_type=code, pid=pid3, patient="||19800101|M", visit="O")


def new_id() -> str:
    return "C" + uuid.uuid4().hex[:12].upper()


class Rig:
    def __init__(self, upstream: MockMLLP, proxy: Child, port: int, admin: int, store) -> None:
        self.upstream = upstream
        self.proxy = proxy
        self.port = port
        self.admin = admin
        self.store = store

    def api(self, method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.admin}{path}", data=data, method=method)
        request.add_header("Authorization", f"Bearer {TOKEN}")
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def fault(self, action: dict, **rule) -> dict:
        return self.api("POST", "/channels/adt/faults", {"action": action, **rule})["rule"]

    def upstream_saw(self, control_id: str) -> int:
        return sum(1 for line in self.upstream.messages() if f"control_id={control_id} " in line)

    def wait_upstream(self, control_id: str, count: int = 1) -> None:
        self.upstream.wait_for(re.compile(rf"control_id={control_id} "), timeout=10, count=count)

    def connect(self, timeout: float = 10.0) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        sock.settimeout(timeout)
        return sock


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    procs = Processes()
    try:
        upstream = start_mock(procs, "--answer-rule", "PID-3.1=re:^9:AE")
        folder = tmp_path_factory.mktemp("fault-effects")
        config = folder / "proxy.yaml"
        store = folder / "captures.db"
        config.write_text(
            f"store: {store}\n"
            "admin: {listen: 127.0.0.1:0}\n"
            "channels:\n"
            "  adt:\n"
            "    protocol: mllp\n"
            "    listen: 127.0.0.1:0\n"
            f"    upstream: 127.0.0.1:{upstream.port}\n"
            f"    ack_timeout_s: {ACK_TIMEOUT_S}\n"
            "    capture: fast\n"
        )
        proxy = Child(procs.harness("proxy", "--config", str(config), env={"HARNESS_ADMIN_TOKEN": TOKEN}))
        port = int(proxy.wait_for(r"channel adt listening on 127\.0\.0\.1:(\d+)").group(1))
        admin = int(proxy.wait_for(r"admin API listening on 127\.0\.0\.1:(\d+)").group(1))
        yield Rig(upstream, proxy, port, admin, store)
    finally:
        procs.stop_all()


@pytest.fixture
def proxy(rig):
    rig.api("POST", "/channels/adt/faults/reset")
    yield rig
    rig.api("POST", "/channels/adt/faults/reset")


def read_frame(sock: socket.socket) -> bytes:
    """Bytes up to and including the first FS CR, or whatever came before the peer closed."""
    data = b""
    while FS + CR not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def msa(frame: bytes) -> list[str]:
    payload = frame.strip(VT + FS + CR)
    for segment in payload.split(CR):
        if segment.startswith(b"MSA"):
            return segment.decode().split("|")
    raise AssertionError(f"no MSA in {frame!r}")


def send_raw(proxy: Rig, payload: bytes, timeout: float = 10.0) -> tuple[bytes, float]:
    with proxy.connect(timeout) as sock:
        started = time.perf_counter()
        sock.sendall(VT + payload + FS + CR)
        frame = read_frame(sock)
        return frame, time.perf_counter() - started


# --- tests -------------------------------------------------------------------------------------


def test_without_rules_the_upstream_answers(proxy):
    cid = new_id()
    frame, _ = send_raw(proxy, message(cid))
    assert msa(frame)[1:3] == ["AA", cid]
    proxy.wait_upstream(cid)
    cid = new_id()
    frame, _ = send_raw(proxy, message(cid, pid3="900001"))
    assert msa(frame)[1:3] == ["AE", cid]


def test_nak_is_answered_by_the_proxy_and_never_forwarded(proxy):
    proxy.fault({"type": "nak", "code": "AR", "text": "ward closed"}, match={"message_type": "ADT^A01"})
    cid = new_id()
    frame, _ = send_raw(proxy, message(cid))
    fields = msa(frame)
    assert fields[1:3] == ["AR", cid]
    assert b"ward closed" in frame
    # a message the rule does not match still goes through
    other = new_id()
    frame, _ = send_raw(proxy, message(other, code="ADT^A08^ADT_A01"))
    assert msa(frame)[1:3] == ["AA", other]
    proxy.wait_upstream(other)
    assert proxy.upstream_saw(cid) == 0


def test_nak_every_nth(proxy):
    proxy.fault({"type": "nak"}, match={"every_nth": 2})
    with MLLPClient("127.0.0.1", proxy.port, timeout=10) as client:
        codes = [client.send(message(new_id())).ack_code for _ in range(4)]
    assert codes == ["AA", "AE", "AA", "AE"]


def test_delay_holds_the_request_back(proxy):
    with MLLPClient("127.0.0.1", proxy.port, timeout=10) as client:
        baseline = client.send(message(new_id()))
        proxy.fault({"type": "delay", "ms": 400}, limit=1)
        cid = new_id()
        delayed = client.send(message(cid))
    assert baseline.ack_code == "AA" and delayed.ack_code == "AA"
    assert delayed.rtt_ms >= 400
    assert delayed.rtt_ms > baseline.rtt_ms
    proxy.wait_upstream(cid)


def test_hold_reply_forwards_at_once_and_relays_late(proxy):
    proxy.fault({"type": "hold_reply", "ms": 400})
    cid = new_id()
    with proxy.connect() as sock:
        started = time.perf_counter()
        sock.sendall(VT + message(cid) + FS + CR)
        proxy.wait_upstream(cid)  # the upstream has it while the sender still waits
        seen_upstream = time.perf_counter() - started
        frame = read_frame(sock)
        elapsed = time.perf_counter() - started
    assert msa(frame)[1:3] == ["AA", cid]
    assert elapsed >= 0.4
    assert seen_upstream < elapsed


def test_drop_leaves_the_sender_waiting(proxy):
    proxy.fault({"type": "drop"})
    cid = new_id()
    with MLLPClient("127.0.0.1", proxy.port, timeout=1.0) as client:
        result = client.send(message(cid))
    assert result.error_kind == "timeout" and result.ack_code is None
    assert proxy.upstream_saw(cid) == 0


def test_late_ack_arrives_after_the_sender_timeout(proxy):
    proxy.fault({"type": "late_ack"}, limit=1)  # default: ack_timeout_s + 1 s = 2 s
    cid = new_id()
    with proxy.connect(timeout=ACK_TIMEOUT_S) as sock:
        started = time.perf_counter()
        sock.sendall(VT + message(cid) + FS + CR)
        with pytest.raises(TimeoutError):
            read_frame(sock)  # the sender's own timeout passes with no ACK
        proxy.wait_upstream(cid)
        sock.settimeout(10)
        frame = read_frame(sock)
        elapsed = time.perf_counter() - started
    assert msa(frame)[1:3] == ["AA", cid]  # the upstream's real ACK, late
    assert elapsed >= ACK_TIMEOUT_S + 1.0


@pytest.mark.parametrize("when", ["before_forward", "after_forward"])
def test_close(proxy, when):
    proxy.fault({"type": "close", "when": when})
    cid = new_id()
    with proxy.connect() as sock:
        sock.sendall(VT + message(cid) + FS + CR)
        assert sock.recv(65536) == b""  # a clean close, no reply
    if when == "after_forward":
        proxy.wait_upstream(cid)
    else:
        check = new_id()
        proxy.api("POST", "/channels/adt/faults/reset")
        assert msa(send_raw(proxy, message(check))[0])[2] == check
        assert proxy.upstream_saw(cid) == 0


def test_close_mid_frame_sends_part_of_the_reply(proxy):
    proxy.fault({"type": "close", "when": "mid_frame"})
    cid = new_id()
    with proxy.connect() as sock:
        sock.sendall(VT + message(cid) + FS + CR)
        data = read_frame(sock)
        assert sock.recv(65536) == b""
    assert data.startswith(VT) and FS + CR not in data and len(data) > 1


def test_reset_gives_econnreset(proxy):
    proxy.fault({"type": "reset"})
    cid = new_id()
    with proxy.connect() as sock:
        sock.sendall(VT + message(cid) + FS + CR)
        with pytest.raises(ConnectionResetError):
            for _ in range(100):
                if not sock.recv(65536):
                    break
    assert proxy.upstream_saw(cid) == 0


def test_duplicate_reaches_the_upstream_twice_and_the_sender_gets_one_ack(proxy):
    proxy.fault({"type": "duplicate"})
    cid = new_id()
    with proxy.connect(timeout=1.0) as sock:
        sock.sendall(VT + message(cid) + FS + CR)
        frame = read_frame(sock)
        proxy.wait_upstream(cid, count=2)
        with pytest.raises(TimeoutError):
            sock.recv(65536)  # no second ACK
    assert msa(frame)[1:3] == ["AA", cid]
    assert proxy.upstream_saw(cid) == 2


def test_throttled_reply_is_slower_than_the_baseline(proxy):
    cid = new_id()
    baseline, base_s = send_raw(proxy, message(cid))
    proxy.fault({"type": "throttle", "bytes_per_s": 200, "target": "response"})
    cid = new_id()
    frame, slow_s = send_raw(proxy, message(cid))
    assert msa(frame)[1:3] == ["AA", cid]
    assert slow_s > base_s
    assert slow_s >= 0.5 * len(frame) / 200


def test_corrupt_request_flip_changes_what_the_upstream_judges(proxy):
    cid = new_id()
    payload = message(cid, pid3="900001")
    offset = payload.index(b"|900001") + 1
    # a seed whose flip keeps the byte a printable non-delimiter, so the message stays well-formed
    seed = next(
        s for s in range(100)
        if 0x30 <= flip_byte(payload, random.Random(s), offset)[0][offset] < 0x7F
        and flip_byte(payload, random.Random(s), offset)[0][offset] not in b"|^~\\&9"
    )  # fmt: skip
    proxy.fault({"type": "corrupt", "mode": "flip_byte", "offset": offset, "seed": seed})
    frame, _ = send_raw(proxy, payload)
    assert msa(frame)[1:3] == ["AA", cid]  # the upstream AEs PID-3.1 starting with 9; it saw a changed byte


def test_corrupt_request_framing_reaches_the_upstream_broken(proxy):
    before = sum(1 for line in proxy.upstream.lines if "no start block" in line)
    proxy.fault({"type": "corrupt", "mode": "break_framing", "framing": "no_start"}, limit=1)
    send_raw(proxy, message(new_id()))  # this upstream tolerates it, and says so in its log
    proxy.upstream.wait_for("no start block", timeout=10, count=before + 1)

    proxy.fault({"type": "corrupt", "mode": "break_framing", "framing": "no_end"}, limit=1)
    cid = new_id()
    with proxy.connect(timeout=ACK_TIMEOUT_S + 5) as sock:
        sock.sendall(VT + message(cid) + FS + CR)
        try:
            data = read_frame(sock)  # the frame never ends upstream: no ACK (closed at the ack timeout)
        except TimeoutError:
            data = b""
    assert FS not in data
    assert proxy.upstream_saw(cid) == 0
    after = new_id()
    assert msa(send_raw(proxy, message(after))[0])[1:3] == ["AA", after]  # and the channel recovers


def test_corrupt_response(proxy):
    proxy.fault({"type": "corrupt", "mode": "truncate", "keep_bytes": 20, "target": "response"}, limit=1)
    frame, _ = send_raw(proxy, message(new_id()))
    assert frame.startswith(VT) and frame.endswith(FS + CR)
    assert len(frame) == 20 + 3
    proxy.fault({"type": "corrupt", "mode": "break_framing", "framing": "no_start", "target": "response"})
    frame, _ = send_raw(proxy, message(new_id()))
    assert frame.startswith(b"MSH|") and frame.endswith(FS + CR)


def test_applied_faults_are_recorded_on_their_exchanges(proxy):
    rule = proxy.fault({"type": "nak", "code": "AE", "text": "recorded"})
    cid = new_id()
    send_raw(proxy, message(cid))
    rows = []
    for _ in range(50):
        out = subprocess.run(
            [*HARNESS, "capture", "list", "--store", str(proxy.store), "--control-id", cid, "--json"],
            capture_output=True, text=True, timeout=60, cwd=ROOT,
        )  # fmt: skip
        rows = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
        if rows:
            break
        time.sleep(0.2)
    assert len(rows) == 1, out.stderr
    fault = rows[0]["fault"]
    assert fault["rule_id"] == rule["id"] and fault["action"] == "nak"
    assert fault["params"]["code"] == "AE"
    assert rows[0]["outcome"] == "fault"
    counters = proxy.api("GET", "/channels")["channels"][0]["counters"]
    assert counters["faults_applied"] >= 1
