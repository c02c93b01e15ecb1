"""The blocking MLLP client against scripted servers on real loopback sockets."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from harness.hl7v2.ack import build_ack
from harness.mllp import Frame, MLLPDecoder, encode
from harness.mllp_client import MLLPClient, TLSOptions
from tests.messages import adt
from tests.tls_material import make_self_signed


def message(control_id: str) -> bytes:
    return adt(
        control_id,
        message_type="ADT^A01",
        pid="123",
        evn=False,
        ts="20240101120000",
        sender=("HIS", "H1"),
        receiver=("HC", "H1"),
    )


def ack(control_id: str, code: str = "AA") -> bytes:
    return encode(build_ack(message(control_id), code))


Script = Callable[[socket.socket, Callable[[], bytes | None]], None]


class ScriptedServer:
    """Accepts connections one after another; ``script(conn, next_message)`` plays each one."""

    def __init__(self, script: Script, family: int = socket.AF_INET, host: str = "127.0.0.1",
                 tls: ssl.SSLContext | None = None) -> None:
        self.listener = socket.socket(family, socket.SOCK_STREAM)
        self.listener.bind((host, 0))
        self.listener.listen(8)
        self.listener.settimeout(10)
        self.port = self.listener.getsockname()[1]
        self.script = script
        self.tls = tls
        self.connections = 0
        self.received: list[bytes] = []
        self.errors: list[BaseException] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            try:
                if self.tls is not None:
                    conn = self.tls.wrap_socket(conn, server_side=True)
                conn.settimeout(10)
                self.script(conn, self._reader(conn))
            except (OSError, ssl.SSLError) as exc:
                if not self.stop.is_set():
                    self.errors.append(exc)
            finally:
                conn.close()

    def _reader(self, conn: socket.socket) -> Callable[[], bytes | None]:
        decoder = MLLPDecoder()
        pending: list[bytes] = []

        def next_message() -> bytes | None:
            while not pending:
                data = conn.recv(65536)
                if not data:
                    return None
                pending.extend(e.payload for e in decoder.feed(data) if isinstance(e, Frame))
            self.received.append(pending[0])
            return pending.pop(0)

        return next_message

    def close(self) -> None:
        self.stop.set()
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        except OSError:
            pass
        self.listener.close()
        self.thread.join(timeout=5)


@pytest.fixture
def serve() -> Iterator[Callable[..., ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def start(script: Script, **kwargs) -> ScriptedServer:
        server = ScriptedServer(script, **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def control_id_of(payload: bytes) -> str:
    return payload.split(b"|")[9].decode()


def ack_all(conn, next_message) -> None:
    while (msg := next_message()) is not None:
        conn.sendall(ack(control_id_of(msg)))


def test_ack_matched_and_connection_kept(serve):
    server = serve(ack_all)
    with MLLPClient("127.0.0.1", server.port, timeout=5) as client:
        results = [client.send(message(f"M{i}")) for i in range(3)]
    assert [(r.control_id, r.ack_code, r.error) for r in results] == [(f"M{i}", "AA", None) for i in range(3)]
    assert all(r.accepted and r.rtt_ms is not None and r.rtt_ms >= 0 for r in results)
    assert results[0].ack.startswith(b"MSH|") and b"MSA|AA|M0" in results[0].ack
    assert server.connections == 1 and client.connections == 1
    assert not any(r.reconnected for r in results)
    assert results[0].as_dict()["control_id"] == "M0"


def test_ack_split_into_single_bytes(serve):
    def slow(conn, next_message):
        while (msg := next_message()) is not None:
            for b in ack(control_id_of(msg), "AE"):
                conn.sendall(bytes([b]))

    server = serve(slow)
    with MLLPClient("127.0.0.1", server.port, timeout=5) as client:
        result = client.send(message("S1"))
    assert result.ack_code == "AE" and not result.accepted and result.error is None


def test_peer_closing_after_each_message_is_transparent(serve):
    def one_per_connection(conn, next_message):
        msg = next_message()
        if msg is not None:
            conn.sendall(ack(control_id_of(msg)))

    server = serve(one_per_connection)
    with MLLPClient("127.0.0.1", server.port, timeout=5) as client:
        results = [client.send(message(f"C{i}")) for i in range(4)]
    assert [r.ack_code for r in results] == ["AA"] * 4
    assert [r.error for r in results] == [None] * 4
    assert server.connections == 4 and client.connections == 4
    assert results[0].reconnected is False and all(r.reconnected for r in results[1:])
    assert [control_id_of(m) for m in server.received] == [f"C{i}" for i in range(4)]


def test_late_ack_is_reported_never_taken(serve):
    def late(conn, next_message):
        first = next_message()  # not answered in time
        second = next_message()
        conn.sendall(ack(control_id_of(first)))  # the late answer to the first
        conn.sendall(ack(control_id_of(second), "AE"))

    server = serve(late)
    with MLLPClient("127.0.0.1", server.port, timeout=0.5) as client:
        first = client.send(message("L1"))
        client.timeout = 5
        second = client.send(message("L2"))
    assert first.error_kind == "timeout" and first.ack_code is None and "no ACK" in first.error
    assert second.ack_code == "AE" and second.control_id == "L2"
    assert [(a.control_id, a.ack_code, a.earlier) for a in second.late_acks] == [("L1", "AA", True)]


def test_late_ack_arriving_between_messages_goes_to_the_next_result(serve):
    gate = threading.Event()

    def late(conn, next_message):
        first = next_message()
        gate.wait(5)
        conn.sendall(ack(control_id_of(first)))
        second = next_message()
        conn.sendall(ack(control_id_of(second)))

    server = serve(late)
    with MLLPClient("127.0.0.1", server.port, timeout=0.3) as client:
        first = client.send(message("B1"))
        gate.set()
        time.sleep(0.3)  # let the late ACK arrive before the next send
        client.timeout = 5
        second = client.send(message("B2"))
    assert first.error_kind == "timeout"
    assert second.ack_code == "AA" and [a.control_id for a in second.late_acks] == ["B1"]


def test_unknown_ack_keeps_waiting_until_timeout(serve):
    def wrong(conn, next_message):
        next_message()
        conn.sendall(ack("SOMEONE-ELSE"))
        next_message()

    server = serve(wrong)
    with MLLPClient("127.0.0.1", server.port, timeout=0.5) as client:
        result = client.send(message("W1"))
    assert result.error_kind == "timeout" and result.ack_code is None
    assert [(a.control_id, a.earlier) for a in result.late_acks] == [("SOMEONE-ELSE", False)]


def test_ack_without_msa2_is_taken_with_a_note(serve):
    def blank(conn, next_message):
        next_message()
        conn.sendall(encode(b"MSH|^~\\&|HC|H1|HIS|H1|20240101||ACK|X|P|2.5\rMSA|AR|\r"))

    server = serve(blank)
    with MLLPClient("127.0.0.1", server.port, timeout=5) as client:
        result = client.send(message("N1"))
    assert result.ack_code == "AR" and any("no MSA-2" in n for n in result.notes)


def test_fresh_connection_closed_without_answer_is_an_error(serve):
    def rude(conn, next_message):
        next_message()

    server = serve(rude)
    with MLLPClient("127.0.0.1", server.port, timeout=5) as client:
        result = client.send(message("R1"))
    assert result.error_kind == "closed" and "closed the connection before an ACK" in result.error
    assert server.connections == 1  # not re-sent: the peer may have processed it


def test_connection_refused():
    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    number = port.getsockname()[1]
    port.close()
    with MLLPClient("127.0.0.1", number, timeout=1) as client:
        result = client.send(message("X1"))
    assert result.error_kind == "connect" and f"cannot connect to 127.0.0.1:{number}" in result.error


def test_payload_with_block_character_is_refused_before_sending():
    client = MLLPClient("127.0.0.1", 9, timeout=1)
    result = client.send(message("Z1") + b"\x1c")
    assert result.error_kind == "invalid" and client.connections == 0


def test_ipv6_loopback(serve):
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        server = serve(ack_all, family=socket.AF_INET6, host="::1")
    except OSError:
        pytest.skip("::1 not available")
    with MLLPClient("::1", server.port, timeout=5) as client:
        result = client.send(message("V6"))
        assert client.address == f"[::1]:{server.port}"
    assert result.ack_code == "AA"


def test_tls_with_ca_and_wrong_ca(serve, tmp_path):
    cert, key = make_self_signed(tmp_path)
    other, _ = make_self_signed(tmp_path, "other")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server = serve(ack_all, tls=ctx)
    with MLLPClient("127.0.0.1", server.port, timeout=5, tls=TLSOptions(ca=str(cert))) as client:
        results = [client.send(message(f"T{i}")) for i in range(2)]
    assert [r.ack_code for r in results] == ["AA", "AA"]
    with MLLPClient("127.0.0.1", server.port, timeout=5, tls=TLSOptions(ca=str(other))) as client:
        bad = client.send(message("T9"))
    assert bad.error_kind == "connect" and "TLS handshake" in bad.error
    with MLLPClient("127.0.0.1", server.port, timeout=5, tls=TLSOptions(verify=False)) as client:
        assert client.send(message("T10")).ack_code == "AA"


def test_large_message_and_many_in_a_row(serve):
    server = serve(ack_all)
    big = message("BIG1").replace(b"ZHANG^SAN", b"ZHANG^" + b"X" * 2_000_000)
    with MLLPClient("127.0.0.1", server.port, timeout=10) as client:
        assert client.send(big).ack_code == "AA"
        results = [client.send(message(f"Q{i}")) for i in range(200)]
    assert all(r.ack_code == "AA" and not r.late_acks for r in results)
    assert server.received[0] == big


# -- acknowledgement modes ------------------------------------------------------------------------


def enhanced(control_id: str, msh15: str = "AL", msh16: str = "AL") -> bytes:
    return (
        f"MSH|^~\\&|HIS|H1|HC|H1|20240101120000||ADT^A01|{control_id}|P|2.5|||{msh15}|{msh16}\r"
        "PID|1||123^^^H1^MR||ZHANG^SAN\r"
    ).encode()


def reply(msg: bytes, code: str) -> bytes:
    return encode(build_ack(msg, code, text=None if code in ("AA", "CA") else f"{code} from the script"))


@pytest.mark.parametrize("together", [False, True])
def test_enhanced_mode_waits_for_the_application_ack_after_the_ca(serve, together):
    def commit_then_reject(conn, next_message):
        while (msg := next_message()) is not None:
            if together:
                conn.sendall(reply(msg, "CA") + reply(msg, "AE"))  # both in one segment
            else:
                conn.sendall(reply(msg, "CA"))
                time.sleep(0.05)
                conn.sendall(reply(msg, "AE"))

    server = serve(commit_then_reject)
    with MLLPClient("127.0.0.1", server.port, timeout=5) as client:
        first, second = client.send(enhanced("E1")), client.send(enhanced("E2"))
    for result, cid in ((first, "E1"), (second, "E2")):
        assert (result.accept_ack_code, result.ack_code, result.outcome) == ("CA", "AE", "nak")
        assert result.control_id == cid and result.late_acks == [] and not result.accepted
        assert result.ack_text == "AE from the script; Application internal error"
        assert result.accept_rtt_ms <= result.rtt_ms
    assert b"MSA|CA|E1" in first.accept_ack and b"MSA|AE|E1" in first.ack


def test_a_missing_application_ack_times_out_on_its_own_clock(serve):
    def commit_only(conn, next_message):
        while (msg := next_message()) is not None:
            time.sleep(0.2)
            conn.sendall(reply(msg, "CA"))

    server = serve(commit_only)
    with MLLPClient("127.0.0.1", server.port, timeout=1, app_timeout=0.3) as client:
        result = client.send(enhanced("E1"))
    assert (result.accept_ack_code, result.ack_code, result.outcome) == ("CA", None, "timeout")
    assert "no application ACK after the CA" in result.error and "within 0.3 s" in result.error


def test_no_ack_messages_do_not_wait_and_stray_replies_go_to_the_next_result(serve):
    def answers_everything(conn, next_message):
        while (msg := next_message()) is not None:
            conn.sendall(reply(msg, "AA"))

    server = serve(answers_everything)  # an engine that ignores MSH-15/16 NE
    with MLLPClient("127.0.0.1", server.port, timeout=5) as client:
        quiet = client.send(enhanced("N1", "NE", "NE"))
        time.sleep(0.1)
        loud = client.send(message("L1"))
    assert (quiet.outcome, quiet.ack_code, quiet.rtt_ms) == ("no_ack_expected", None, None)
    assert quiet.accepted
    assert (loud.outcome, loud.ack_code) == ("ok", "AA")
    assert [(a.control_id, a.ack_code, a.earlier) for a in loud.late_acks] == [("N1", "AA", True)]


def test_error_only_acks_are_awaited_briefly_and_silence_is_success(serve):
    def silent_unless_bad(conn, next_message):
        while (msg := next_message()) is not None:
            if b"BAD" in msg:
                conn.sendall(reply(msg, "AE"))

    server = serve(silent_unless_bad)
    with MLLPClient("127.0.0.1", server.port, timeout=5, conditional_wait=0.2) as client:
        fine = client.send(enhanced("OK1", "ER", "ER"))
        bad = client.send(enhanced("BAD1", "ER", "ER"))
    assert (fine.outcome, fine.ack_code) == ("ok", None) and "no error ACK came" in fine.notes[-1]
    assert (bad.outcome, bad.ack_code) == ("nak", "AE")


@pytest.mark.parametrize(
    ("answer", "outcome", "code"),
    [
        (b"MSH|^~\\&|HC||||20240101||ACK|R1|P|2.5\rMSA|XX|B1\r", "bad_ack", "XX"),
        (b"MSH|^~\\&|HC||||20240101||ACK|R1|P|2.5\rMSA|AR|\r", "nak", "AR"),
        (b"MSH|^~\\&|HC||||20240101||ACK|R1|P|2.5\r", "bad_ack", None),
    ],
)
def test_replies_that_are_not_accepts_fail_the_message(serve, answer, outcome, code):
    def odd(conn, next_message):
        while next_message() is not None:
            conn.sendall(encode(answer))

    server = serve(odd)
    with MLLPClient("127.0.0.1", server.port, timeout=5) as client:
        result = client.send(message("B1"))
    assert (result.outcome, result.ack_code, result.accepted) == (outcome, code, False)
