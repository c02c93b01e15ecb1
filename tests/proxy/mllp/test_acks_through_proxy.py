"""Acknowledgement modes through a real proxy process, with peers on loopback.

- An upstream answering CA then AE: the sender receives both frames, byte for byte, and the capture
  holds both replies on one exchange with outcome nak; `harness send` through the same path exits 1
  naming the AE on the right message.
- NE/NE messages among AL/AL ones: nothing waits for a reply that will not come, counts are right.
- hl7apy's MLLPServer answering an AR without MSA-2 (its ERR handler): relayed and recorded as a NAK.
- A public corpus message asking for AL/AL through the proxy to `harness mock mllp`: both ACKs at the
  sender and on one exchange.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
from pathlib import Path

import pytest

from harness.hl7v2.ack import build_ack
from harness.hl7v2.files import iter_messages
from harness.hl7v2.meta import extract
from harness.mllp import Frame, MLLPDecoder, encode
from harness.store import ExchangeFilter, Store
from tests.messages import adt
from tests.mock_mllp_process import start_mock
from tests.ports import free_port
from tests.processes import ROOT
from tests.proxy.proxy_process import Sender, start_hl7apy_upstream, start_proxy, write_config

CORPUS = ROOT.parent / "shared" / "corpus" / "hl7v2" / "fhir-converter"


def stored(path: Path, **flt) -> list:
    with Store(path) as store:
        return list(store.query(ExchangeFilter(**flt)))


def stop(proxy) -> None:
    os.killpg(proxy.pid, signal.SIGTERM)
    assert proxy.wait(timeout=60) == 0


class TwoReplyUpstream:
    """An engine in enhanced mode: CA at once, the application ACK (AE for 'REJECT' messages) a moment
    later, in a separate write; keeps the bytes it sent per control id."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.port = self.listener.getsockname()[1]
        self.sent: dict[str, list[bytes]] = {}
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._connection, args=(conn,), daemon=True).start()

    def _connection(self, conn: socket.socket) -> None:
        decoder = MLLPDecoder()
        with conn:
            while data := conn.recv(65536):
                for event in decoder.feed(data):
                    if not isinstance(event, Frame):
                        continue
                    msg = event.payload
                    meta = extract(msg)
                    if meta.accept_ack_type == "NE" and meta.app_ack_type == "NE":
                        continue
                    code = "AE" if b"REJECT" in msg else "AA"
                    ca = build_ack(msg, "CA")
                    app = build_ack(msg, code, text="rejected by the application" if code == "AE" else None)
                    self.sent[meta.control_id] = [ca, app]
                    conn.sendall(encode(ca))
                    threading.Event().wait(0.02)
                    conn.sendall(encode(app))

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def two_reply_upstream():
    upstream = TwoReplyUpstream()
    yield upstream
    upstream.close()


@pytest.mark.parametrize("capture", ["durable", "fast"])
def test_commit_then_application_reject_reaches_the_sender_and_one_exchange(
    processes, tmp_path, two_reply_upstream, capture
):
    config, port = write_config(tmp_path, upstream=f"127.0.0.1:{two_reply_upstream.port}", capture=capture)
    proxy = start_proxy(processes, config, port)
    sender = Sender(port)
    good = adt("E1", msh15="AL", msh16="AL")
    bad = adt("E2", msh15="AL", msh16="AL", name="REJECT^ME")
    try:
        got = []
        for msg in (good, bad):
            sender.send(msg)
            got.append((sender.receive(), sender.receive()))
    finally:
        sender.close()
    assert [list(pair) for pair in got] == [two_reply_upstream.sent["E1"], two_reply_upstream.sent["E2"]]
    stop(proxy)
    rows = stored(tmp_path / "captures.db")
    assert [(ex.control_id, ex.accept_ack_code, ex.ack_code, ex.outcome) for ex in rows] == [
        ("E1", "CA", "AA", "ok"), ("E2", "CA", "AE", "nak"),
    ]
    assert [[ex.accept_response, ex.response] for ex in rows] == [list(p) for p in got]
    assert rows[1].request == bad and rows[1].meta["accept_ack_type"] == "AL"


def test_harness_send_through_the_proxy_names_the_ae_on_its_own_message(
    processes, tmp_path, two_reply_upstream
):
    config, port = write_config(tmp_path, upstream=f"127.0.0.1:{two_reply_upstream.port}")
    start_proxy(processes, config, port)
    (tmp_path / "two.hl7").write_bytes(
        adt("E1", msh15="AL", msh16="AL") + b"\n" + adt("E2", msh15="AL", msh16="AL", name="REJECT^ME")
    )
    proc = processes.harness("send", f"127.0.0.1:{port}", str(tmp_path / "two.hl7"), "--json")
    out, _ = proc.communicate(timeout=60)
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert proc.returncode == 1, out
    messages = [r for r in rows if r["type"] == "message"]
    assert [(r["control_id"], r["accept_ack_code"], r["ack_code"], r["outcome"]) for r in messages] == [
        ("E1", "CA", "AA", "ok"), ("E2", "CA", "AE", "nak"),
    ]
    assert "rejected by the application" in messages[1]["ack_text"]
    assert rows[-1]["outcomes"] == {"ok": 1, "nak": 1}


def test_no_ack_messages_among_acknowledged_ones_never_wait(processes, tmp_path, two_reply_upstream):
    config, port = write_config(tmp_path, upstream=f"127.0.0.1:{two_reply_upstream.port}", ack_timeout_s=5)
    proxy = start_proxy(processes, config, port)
    sender = Sender(port, timeout=3)  # far less than the ACK timeout: a wait would show
    expected = []
    try:
        for i in range(10):
            if i % 2:
                sender.send(adt(f"Q{i}", msh15="NE", msh16="NE"))
            else:
                sender.send(adt(f"L{i}", msh15="AL", msh16="AL"))
                expected.append(f"L{i}")
                codes = [extract(sender.receive()).ack_code for _ in range(2)]
                assert codes == ["CA", "AA"]
    finally:
        sender.close()
    stop(proxy)
    rows = stored(tmp_path / "captures.db")
    outcomes = sorted((ex.control_id, ex.outcome) for ex in rows)
    assert outcomes == sorted(
        [(f"L{i}", "ok") for i in range(0, 10, 2)] + [(f"Q{i}", "no_ack_expected") for i in range(1, 10, 2)]
    )


def test_hl7apy_ar_without_msa2_is_relayed_and_recorded_as_a_nak(processes, tmp_path):
    up_port = free_port()
    log = tmp_path / "upstream.jsonl"
    start_hl7apy_upstream(processes, up_port, log, fail_on="REFUSE")
    config, port = write_config(tmp_path, upstream=f"127.0.0.1:{up_port}")
    proxy = start_proxy(processes, config, port)
    sender = Sender(port)
    try:
        ok = sender.exchange(adt("H1"))
        refused = sender.exchange(adt("H2", name="REFUSE^ME"))
    finally:
        sender.close()
    upstream_sent = [json.loads(line)["ack"].encode() for line in log.read_text().splitlines()]
    assert [ok, refused] == upstream_sent
    meta = extract(refused)
    assert (meta.ack_code, meta.ack_control_id) == ("AR", None)
    stop(proxy)
    rows = stored(tmp_path / "captures.db")
    assert [(ex.control_id, ex.outcome, ex.ack_code) for ex in rows] == [
        ("H1", "ok", "AA"), ("H2", "nak", "AR"),
    ]
    assert rows[1].response == refused and "no MSA-2" in " ".join(rows[1].notes)


def test_a_public_al_al_message_shows_both_acks_at_the_sender_and_on_one_exchange(processes, tmp_path):
    path = CORPUS / "MDHHS-OML-O21-1.hl7"
    if not path.exists():
        pytest.skip(f"the public corpus is not here ({path})")
    (message,) = [m.payload for m in iter_messages([path])]
    meta = extract(message)
    assert (meta.accept_ack_type, meta.app_ack_type) == ("AL", "AL")
    mock = start_mock(processes, "--app-delay-ms", "20")
    config, port = write_config(tmp_path, upstream=f"127.0.0.1:{mock.port}")
    proxy = start_proxy(processes, config, port)
    sender = Sender(port)
    try:
        sender.send(message)
        replies = [sender.receive(), sender.receive()]
    finally:
        sender.close()
    assert [(extract(r).ack_code, extract(r).ack_control_id) for r in replies] == [
        ("CA", meta.control_id), ("AA", meta.control_id),
    ]
    stop(proxy)
    (ex,) = stored(tmp_path / "captures.db")
    assert (ex.accept_ack_code, ex.ack_code, ex.outcome) == ("CA", "AA", "ok")
    assert (ex.accept_response, ex.response, ex.request) == (replies[0], replies[1], message)
