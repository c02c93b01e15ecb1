"""`harness mock mllp`: the sans-IO Responder, then the server as a child process on loopback."""

from __future__ import annotations

import signal
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.hl7v2.meta import extract
from harness.mllp import FrameTooLarge, Junk, MLLPDecoder, encode
from harness.simulators.mllp import AnswerRule, MockSettings, Responder
from tests.messages import adt
from tests.mock_mllp_process import start_mock


def message(control_id: str = "M1", mrn: str = "123", msh15: str = "", msh16: str = "") -> bytes:
    hosts = {"sender": ("HIS", "H1"), "receiver": ("HC", "H1")}
    return adt(control_id, pid=mrn, evn=False, ts="20240101120000", msh15=msh15, msh16=msh16, **hosts)


def codes(reply) -> list[tuple[str | None, str | None]]:
    return [(extract(a).ack_code, extract(a).ack_control_id) for a in reply.acks]


def test_default_answer_is_aa_for_the_message():
    reply = Responder(MockSettings()).answer(message("C1"))
    assert codes(reply) == [("AA", "C1")]
    assert reply.codes == ["AA"] and not reply.close and reply.delay_s == 0
    assert reply.log == "#1 control_id=C1 type=ADT^A01 answer=AA"


@pytest.mark.parametrize("code", ["AE", "AR"])
def test_error_answers_carry_err(code):
    reply = Responder(MockSettings(answer=code)).answer(message("C2"))
    assert codes(reply) == [(code, "C2")]
    assert b"\rERR|" in reply.acks[0]


def test_enhanced_mode_sends_commit_then_application_ack():
    reply = Responder(MockSettings()).answer(message("E1", msh15="AL", msh16="AL"))
    assert codes(reply) == [("CA", "E1"), ("AA", "E1")]
    assert "answer=CA+AA" in reply.log


def test_enhanced_mode_commit_reject_only():
    reply = Responder(MockSettings(answer="CR")).answer(message("E2", msh15="AL", msh16="AL"))
    assert codes(reply) == [("CR", "E2")]


def test_enhanced_code_on_original_mode_message_maps_to_original():
    assert Responder(MockSettings(answer="CE")).answer(message("E3")).codes == ["AE"]


def test_no_ack_when_msh15_and_msh16_say_never():
    reply = Responder(MockSettings()).answer(message("E4", msh15="NE", msh16="NE"))
    assert reply.acks == [] and "answer=none" in reply.log


def test_problems_in_the_message_are_logged():
    bad_bytes = message("P9").replace(b"ZHANG", b"\xff\xfe")
    reply = Responder(MockSettings()).answer(bad_bytes)
    assert reply.codes == ["AA"] and "problems:" in reply.log and "cannot be decoded" in reply.log


def test_nak_every_nth_message():
    responder = Responder(MockSettings(nak_every=3, nak_code="AR"))
    got = [responder.answer(message(f"N{i}")).codes[0] for i in range(6)]
    assert got == ["AA", "AA", "AR", "AA", "AA", "AR"]


def test_content_rules_first_match_wins():
    settings = MockSettings(
        rules=(AnswerRule.parse("PID-3.1=re:^9:AE"), AnswerRule.parse("MSH-10=R2:AR"))
    )
    responder = Responder(settings)
    assert responder.answer(message("R1", mrn="9001")).codes == ["AE"]
    assert responder.answer(message("R2", mrn="1001")).codes == ["AR"]
    reply = responder.answer(message("R3", mrn="1002"))
    assert reply.codes == ["AA"] and "rule" not in reply.log


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("PID-3.1", "expected PATH=VALUE:CODE"),
        ("PID-3.1=x:ZZ", "code 'ZZ'"),
        ("PID-3.1=re:(:AE", "bad regular expression"),
        ("nonsense=x:AE", "bad HL7 path"),
    ],
)
def test_bad_rules_are_refused_clearly(text, error):
    with pytest.raises(ValueError, match=error):
        AnswerRule.parse(text)


def test_settings_are_checked():
    with pytest.raises(ValueError, match="answer"):
        MockSettings(answer="OK")
    with pytest.raises(ValueError, match="malformed"):
        MockSettings(malformed="ignore")


def test_malformed_gets_ar_or_close():
    reply = Responder(MockSettings()).answer(b"hello world")
    assert codes(reply) == [("AR", None)] and "malformed" in reply.log
    closing = Responder(MockSettings(malformed="close")).answer(b"hello world")
    assert closing.acks == [] and closing.close and "answer=close" in closing.log


def test_no_answer_close_after_each_and_delay():
    assert Responder(MockSettings(no_answer=True)).answer(message()).acks == []
    reply = Responder(MockSettings(close_after_each=True, delay_ms=250)).answer(message())
    assert reply.close and reply.delay_s == 0.25 and reply.codes == ["AA"]


def test_oversized_frame_gets_ar_and_junk_is_only_logged():
    responder = Responder(MockSettings())
    reply = responder.framing(FrameTooLarge(0, 100, 50, b"MSH|^~\\&|", True))
    assert reply.codes == ["AR"] and "larger than the 50-byte limit" in reply.log
    junk = responder.framing(Junk(3, 2, b"\r\n"))
    assert junk.acks == [] and junk.log.startswith("framing:")


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=200),
        st.binary(max_size=120).map(lambda b: b"MSH" + b),
        st.binary(max_size=120).map(lambda b: b"MSH|^~\\&|" + b),
    ),
    st.sampled_from(["AA", "AE", "CR"]),
)
def test_responder_never_raises_on_any_payload(payload, answer):
    rules = (AnswerRule.parse("PID-3.1=re:^9:AR"),)
    reply = Responder(MockSettings(answer=answer, rules=rules)).answer(payload)
    assert reply.log and len(reply.acks) == len(reply.codes)
    for ack in reply.acks:
        assert ack.startswith(b"MSH") and b"\rMSA" + ack[3:4] in ack  # the message's field separator


# -- the server as a child process ---------------------------------------------------------


def exchange(port: int, data: bytes, frames: int, host: str = "127.0.0.1") -> list[bytes]:
    """Send raw bytes, read until `frames` frames came back (or the peer closed)."""
    decoder = MLLPDecoder()
    got: list[bytes] = []
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(data)
        while len(got) < frames:
            chunk = sock.recv(65536)
            if not chunk:
                break
            got.extend(e.payload for e in decoder.feed(chunk) if hasattr(e, "payload"))
    return got


def test_server_keeps_serving_after_bad_input(processes):
    mock = start_mock(processes)
    data = b"GARBAGE" + encode(b"not hl7 at all") + encode(message("OK1"))
    acks = exchange(mock.port, data, 2)
    assert [(extract(a).ack_code, extract(a).ack_control_id) for a in acks] == [("AR", None), ("AA", "OK1")]
    mock.wait_for(r"control_id=OK1 type=ADT\^A01 answer=AA")
    assert any("malformed" in line for line in mock.messages())
    assert any(line.startswith("framing:") for line in mock.lines)
    assert mock.stop() == 0
    assert mock.lines[-1] == "stopped"


def test_oversized_frame_gets_ar_and_serving_goes_on(processes):
    mock = start_mock(processes, "--max-frame", "200")
    big = message("BIG").replace(b"ZHANG^SAN", b"ZHANG^" + b"X" * 400)
    acks = exchange(mock.port, encode(big) + encode(message("SMALL")), 2)
    assert [(extract(a).ack_code, extract(a).ack_control_id) for a in acks] == [("AR", None), ("AA", "SMALL")]
    assert b"larger than the 200-byte limit" in acks[0]
    mock.wait_for("control_id=SMALL")


def test_close_after_each_and_sigint(processes):
    mock = start_mock(processes, "--close-after-each")
    acks = exchange(mock.port, encode(message("A1")) + encode(message("A2")), 5)
    assert [extract(a).ack_control_id for a in acks] == ["A1"]  # answered, then closed
    assert mock.stop(signal.SIGINT) == 0


def test_ipv6_listen(processes):
    try:
        socket.socket(socket.AF_INET6).bind(("::1", 0))
    except OSError:
        pytest.skip("::1 not available")
    mock = start_mock(processes, host="::1")
    assert mock.lines[0] == f"listening on [::1]:{mock.port}"
    assert [extract(a).ack_code for a in exchange(mock.port, encode(message()), 1, host="::1")] == ["AA"]


def test_bad_options_exit_2(processes):
    proc = processes.harness("mock", "mllp", "--listen", "127.0.0.1:0", "--answer", "OK")
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 2 and "answer 'OK'" in out


def test_port_in_use_and_bad_certificate_exit_2(processes, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = processes.harness("mock", "mllp", "--listen", f"127.0.0.1:{port}")
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 2 and "Address already in use" in out
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    proc = processes.harness("mock", "mllp", "--listen", "127.0.0.1:0", "--tls-cert", str(bad))
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 2 and f"--tls-cert: {str(bad)!r} holds no PEM certificate" in out


def test_python_hl7_client_against_mock(processes):
    """python-hl7's MLLPClient (a peer nobody here wrote) talking to our server."""
    import hl7.client

    mock = start_mock(processes, "--answer-rule", "PID-3.1=re:^9:AE")
    with hl7.client.MLLPClient("127.0.0.1", mock.port) as client:
        first = client.send_message(message("P1").decode())
        second = client.send_message(message("P2", mrn="9123").decode())
    assert b"MSA|AA|P1" in first and b"MSA|AE|P2" in second
    mock.wait_for("control_id=P2 type=ADT\\^A01 answer=AE")
