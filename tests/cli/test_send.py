"""`harness send` as a child process against `harness mock mllp` and against hl7apy's MLLPServer."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import pytest

from tests.mock_mllp_process import start_mock
from tests.ports import free_port
from tests.processes import ROOT
from tests.tls_material import make_self_signed

FIXTURES = ROOT / "fixtures" / "hl7v2"
MINE = ["adt_a01_admit.hl7", "oru_r01_glucose.hl7", "adt_a08_update_lf.hl7", "adt_batch.hl7"]
FILES = [str(FIXTURES / name) for name in MINE]
CONTROL_IDS = [
    "HIS20240315083012001",
    "LIS20240315101500042",
    "EMR20240315140230007",
    "HIS20240315175501011",
    "HIS20240315175812012",
]


def send(processes, target: str, *args: str, timeout: float = 60) -> tuple[int, str]:
    proc = processes.harness("send", target, *args)
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def json_lines(out: str) -> list[dict]:
    """The per-message objects of `--json` output (the last line is the summary object)."""
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return [row for row in rows if row.get("type") == "message"]


def summary_of(out: str) -> dict:
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert rows and rows[-1]["type"] == "summary", out
    return rows[-1]


def test_send_fixtures_all_accepted(processes):
    mock = start_mock(processes)
    code, out = send(processes, f"127.0.0.1:{mock.port}", *FILES, "--json")
    assert code == 0, out
    rows = json_lines(out)
    assert [r["control_id"] for r in rows] == CONTROL_IDS
    # adt_a01 asks for enhanced mode (MSH-15 AL, MSH-16 NE): a commit ACK; the rest original mode
    assert [r["ack_code"] for r in rows] == ["CA", "AA", "AA", "AA", "AA"]
    assert [r["message_type"] for r in rows][:2] == ["ADT^A01", "ORU^R01"]
    assert summary_of(out) == {"type": "summary", "target": f"127.0.0.1:{mock.port}", "messages": 5,
                               "outcomes": {"ok": 5}, "skipped_unreadable": 0, "exit_code": 0}
    assert all(r["error"] is None and r["rtt_ms"] >= 0 for r in rows)
    batch = [(Path(r["source"]).name, r["index"]) for r in rows][-2:]
    assert batch == [("adt_batch.hl7", 0), ("adt_batch.hl7", 1)]
    assert len(mock.messages()) == 5


def test_plain_output_one_line_per_message(processes):
    mock = start_mock(processes)
    code, out = send(processes, f"127.0.0.1:{mock.port}", FILES[1])
    assert code == 0
    line = next(x for x in out.splitlines() if x.startswith("LIS"))
    assert line.split()[:3] == ["LIS20240315101500042", "ORU^R01", "AA"] and " ms " in line
    assert "1 message(s) sent to" in out and "1 accepted" in out


def test_segments_go_out_with_cr_whatever_the_file_used(processes, tmp_path):
    mock = start_mock(processes, "--answer-rule", "PID-3.1=0000987654:AR")
    code, out = send(processes, f"127.0.0.1:{mock.port}", FILES[2], "--json")
    # the LF file's PID-3.1 is only readable if its segments arrived separated by CR
    assert code == 1 and json_lines(out)[0]["ack_code"] == "AR"


@pytest.mark.parametrize("answer", ["AE", "AR"])
def test_nak_exits_1(processes, answer):
    mock = start_mock(processes, "--answer", answer)
    code, out = send(processes, f"127.0.0.1:{mock.port}", FILES[1], "--json")
    assert code == 1 and json_lines(out)[0]["ack_code"] == answer


def test_nak_every_second_message(processes):
    mock = start_mock(processes, "--nak-every", "2")
    code, out = send(processes, f"127.0.0.1:{mock.port}", *FILES[1:], "--json")
    assert code == 1
    assert [r["ack_code"] for r in json_lines(out)] == ["AA", "AE", "AA", "AE"]


def test_close_after_each_reconnects(processes):
    mock = start_mock(processes, "--close-after-each")
    code, out = send(processes, f"127.0.0.1:{mock.port}", *FILES, "--json")
    assert code == 0, out
    rows = json_lines(out)
    assert [r["control_id"] for r in rows] == CONTROL_IDS
    assert [r["reconnected"] for r in rows] == [False, True, True, True, True]


def test_no_answer_times_out_exit_1(processes):
    mock = start_mock(processes, "--no-answer")
    code, out = send(processes, f"127.0.0.1:{mock.port}", FILES[1], "--timeout", "0.5", "--json")
    assert code == 1
    (row,) = json_lines(out)
    assert row["ack_code"] is None and "no ACK" in row["error"] and row["error_kind"] == "timeout"


def test_delayed_answer_within_timeout(processes):
    mock = start_mock(processes, "--delay-ms", "200")
    code, out = send(processes, f"127.0.0.1:{mock.port}", FILES[1], "--json")
    assert code == 0 and json_lines(out)[0]["ack_code"] == "AA"


def test_connection_refused_exit_2(processes):
    code, out = send(processes, f"127.0.0.1:{free_port()}", FILES[1])
    assert code == 2 and "cannot connect to 127.0.0.1" in out and "Traceback" not in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nohostport", "x.hl7"], "expected HOST:PORT"),
        (["127.0.0.1:1", "/no/such/file.hl7"], "no such file or folder"),
    ],
)
def test_usage_errors_exit_2(processes, args, message):
    code, out = send(processes, *args)
    assert code == 2 and message in out


def test_file_without_msh_exit_2_naming_it(processes, tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("just some notes\n")
    code, out = send(processes, "127.0.0.1:1", str(bad))
    assert code == 2 and "notes.txt" in out and "before any MSH" in out


def test_skip_unreadable_sends_the_rest_and_fails_the_run_saying_what_it_skipped(processes, tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("just some notes\n")
    good = FIXTURES / "adt_a01_admit.hl7"
    port = start_mock(processes).port
    code, out = send(processes, f"127.0.0.1:{port}", str(bad), str(good))
    assert code == 2 and "nothing was sent; --skip-unreadable sends the other files" in out
    code, out = send(processes, f"127.0.0.1:{port}", str(bad), str(good), "--skip-unreadable")
    assert code == 1, out  # something was left out: not a clean run
    assert "skipped, unreadable:" in out and "notes.txt" in out and "before any MSH" in out
    assert "HIS20240315083012001" in out and "ADT^A01" in out
    assert "1 message(s) sent to 127.0.0.1:" in out and "1 accepted; 1 unreadable skipped" in out
    code, out = send(processes, f"127.0.0.1:{port}", str(bad), str(good), "--skip-unreadable", "--json")
    assert code == 1 and summary_of(out)["skipped_unreadable"] == 1 and summary_of(out)["messages"] == 1


def test_enhanced_mode_waits_for_the_application_ack_and_names_it_on_its_own_line(processes, tmp_path):
    """MSH-15/16 AL/AL: the mock sends CA then the application ACK; send waits for both, per message."""
    messages = "".join(
        f"MSH|^~\\&|HIS|H1|HC|H1|20240101||ADT^A01|EN{i}|P|2.5|||AL|AL\rPID|1||{i}^^^H1^MR\r"
        for i in range(2)
    )
    (tmp_path / "enhanced.hl7").write_text(messages)
    mock = start_mock(processes, "--app-delay-ms", "50")
    code, out = send(processes, f"127.0.0.1:{mock.port}", str(tmp_path / "enhanced.hl7"), "--json")
    rows = json_lines(out)
    assert code == 0, out
    assert [(r["control_id"], r["accept_ack_code"], r["ack_code"], r["outcome"]) for r in rows] == [
        ("EN0", "CA", "AA", "ok"), ("EN1", "CA", "AA", "ok"),
    ]
    assert all(r["late_acks"] == [] and r["accept_rtt_ms"] <= r["rtt_ms"] for r in rows)
    assert summary_of(out)["outcomes"] == {"ok": 2}
    mock.stop()
    refusing = start_mock(processes, "--answer-rule", "PID-3.1=1:AE")  # CA for both, AE for EN1
    code, out = send(processes, f"127.0.0.1:{refusing.port}", str(tmp_path / "enhanced.hl7"), "--json")
    first, second = json_lines(out)
    assert code == 1
    assert (first["accept_ack_code"], first["ack_code"], first["late_acks"]) == ("CA", "AA", [])
    assert (second["accept_ack_code"], second["ack_code"], second["outcome"]) == ("CA", "AE", "nak")
    assert "AE answered by harness mock mllp" in second["ack_text"]
    assert summary_of(out)["outcomes"] == {"ok": 1, "nak": 1} and summary_of(out)["exit_code"] == 1
    code, out = send(processes, f"127.0.0.1:{refusing.port}", str(tmp_path / "enhanced.hl7"))
    line = next(x for x in out.splitlines() if x.startswith("EN1"))
    assert "CA+AE" in line and "nak: AE answered by harness mock mllp" in line
    assert "1 accepted, 1 rejected" in out


def test_no_ack_messages_are_sent_without_waiting_and_do_not_fail_the_run(processes, tmp_path):
    lines = []
    for i in range(4):
        ack_mode = "|||NE|NE" if i % 2 else ""
        lines.append(f"MSH|^~\\&|HIS|H1|HC|H1|20240101||ADT^A08|Q{i}|P|2.5{ack_mode}\rPID|1||{i}^^^H1^MR\r")
    (tmp_path / "mixed.hl7").write_text("".join(lines))
    mock = start_mock(processes)
    code, out = send(processes, f"127.0.0.1:{mock.port}", str(tmp_path / "mixed.hl7"), "--json")
    rows = json_lines(out)
    assert code == 0, out
    assert [(r["control_id"], r["outcome"], r["ack_code"]) for r in rows] == [
        ("Q0", "ok", "AA"), ("Q1", "no_ack_expected", None),
        ("Q2", "ok", "AA"), ("Q3", "no_ack_expected", None),
    ]
    assert summary_of(out)["outcomes"] == {"ok": 2, "no_ack_expected": 2}
    mock.wait_for("control_id=Q3")
    assert len(mock.messages()) == 4


def test_tls(processes, tmp_path):
    cert, key = make_self_signed(tmp_path)
    mock = start_mock(processes, "--tls-cert", str(cert), "--tls-key", str(key))
    target = f"127.0.0.1:{mock.port}"
    code, out = send(processes, target, *FILES[:2], "--ca", str(cert), "--json")
    assert code == 0, out
    assert [r["ack_code"] for r in json_lines(out)] == ["CA", "AA"]
    mock.stop()
    closing = start_mock(processes, "--tls-cert", str(cert), "--tls-key", str(key), "--close-after-each")
    code, out = send(processes, f"localhost:{closing.port}", *FILES, "--ca", str(cert), "--json")
    assert code == 0, out
    assert [r["reconnected"] for r in json_lines(out)] == [False, True, True, True, True]
    other, _ = make_self_signed(tmp_path, "other")
    code, out = send(processes, f"127.0.0.1:{closing.port}", FILES[1], "--tls", "--ca", str(other))
    assert code == 2 and "TLS handshake" in out


def test_late_ack_reported(processes):
    """A server that answers the first message only after the second arrived."""
    from harness.hl7v2.ack import build_ack
    from harness.mllp import Frame, MLLPDecoder, encode

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]

    def late_server() -> None:
        conn, _ = listener.accept()
        with conn:
            decoder = MLLPDecoder()
            frames: list[bytes] = []
            while len(frames) < 2:
                data = conn.recv(65536)
                if not data:
                    return
                frames += [e.payload for e in decoder.feed(data) if isinstance(e, Frame)]
            conn.sendall(encode(build_ack(frames[0], "AA")) + encode(build_ack(frames[1], "AA")))
            conn.recv(10)

    thread = threading.Thread(target=late_server, daemon=True)
    thread.start()
    try:
        # the first times out whatever the value; the second's ACK must come within it on a busy machine
        code, out = send(processes, f"127.0.0.1:{port}", *FILES[1:3], "--timeout", "1.5", "--json")
    finally:
        listener.close()
        thread.join(timeout=5)
    first, second = json_lines(out)
    assert code == 1
    assert first["error_kind"] == "timeout" and first["ack_code"] is None
    assert second["ack_code"] == "AA"
    assert second["late_acks"] == [
        {"control_id": CONTROL_IDS[1], "ack_code": "AA", "earlier": True, "application": False}
    ]


def test_send_against_hl7apy_mllp_server(processes):
    """hl7apy's MLLPServer (a peer nobody here wrote): one message per connection, then it closes."""
    from hl7apy.core import Message
    from hl7apy.mllp import AbstractHandler, MLLPServer
    from hl7apy.parser import parse_message

    class AckHandler(AbstractHandler):
        def reply(self) -> str:
            incoming = parse_message(self.incoming_message, find_groups=False)
            ack = Message("ACK", version="2.5")
            ack.msh.msh_3 = incoming.msh.msh_5.value
            ack.msh.msh_5 = incoming.msh.msh_3.value
            ack.msh.msh_10 = "A" + incoming.msh.msh_10.value[-15:]
            ack.msa.msa_1 = "AA"
            ack.msa.msa_2 = incoming.msh.msh_10.value
            return "\x0b" + ack.to_er7() + "\x1c\r"

    types = ["ADT^A01^ADT_A01", "ORU^R01^ORU_R01", "ADT^A08^ADT_A01", "ADT^A03^ADT_A03", "ADT^A04^ADT_A01"]
    server = MLLPServer("127.0.0.1", 0, {t: (AckHandler,) for t in types}, timeout=10)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        code, out = send(processes, f"127.0.0.1:{server.server_address[1]}", *FILES, "--json")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert code == 0, out
    rows = json_lines(out)
    assert [r["control_id"] for r in rows] == CONTROL_IDS
    assert [r["ack_code"] for r in rows] == ["AA"] * 5
    assert [r["reconnected"] for r in rows] == [False, True, True, True, True]
