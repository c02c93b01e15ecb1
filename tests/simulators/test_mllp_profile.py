"""`harness mock mllp --profile`: the interface's receiver. Messages are validated against the standard and
the profile; an invalid one gets AE (content) or AR (not this interface's message) with an ERR segment per
error, CE/CR in enhanced mode. Sent with python-hl7's client, a peer the harness did not write."""

from __future__ import annotations

import hl7
import pytest
from hl7.client import MLLPClient

from harness.hl7v2.validation.answer import answer
from tests.childproc import start_listening

PROFILE = "specs/hl7v2/yunnan-his-adt.yaml"
ADT = (
    "MSH|^~\\&|HIS|H53010001|HC|H53010001|20240301083000||ADT^A01^ADT_A01|MSG0001|P|2.5|||{ack}|CHN|GBK\r"
    "EVN|A01|20240301083000\r"
    "PID|1||530102198001011234^^^H53010001^IdentifyNO||张^三||19800101|{sex}||||||||||||||HA^汉族\r"
    "PV1|1|I|0101^01^01||||D001^李^医生|||0101|||||||||ZY0001|||||||||||||||||||||||||20240301083000\r"
)


@pytest.fixture(scope="module")
def mock():
    from tests.processes import Processes

    processes = Processes()
    try:
        yield start_listening(processes, "mock", "mllp", "--listen", "127.0.0.1:0", "--profile", PROFILE)[1]
    finally:
        processes.stop_all()


def send(port: int, message: str) -> hl7.Message:
    with MLLPClient("127.0.0.1", port, encoding="gb18030") as client:
        return hl7.parse(client.send_message(message))


def test_a_valid_message_is_accepted(mock):
    ack = send(mock, ADT.format(ack="|", sex="1"))
    assert str(ack.segment("MSA")[1]) == "AA" and str(ack.segment("MSA")[2]) == "MSG0001"


def test_a_code_outside_the_profile_value_set_gets_ae_with_an_err_segment_naming_the_field(mock):
    ack = send(mock, ADT.format(ack="|", sex="X"))
    assert str(ack.segment("MSA")[1]) == "AE"
    err = ack.segment("ERR")
    assert str(err[2]) == "PID^1^8^1" and str(err[3][0][0]) == "103"
    assert "PROFILE-VALUE-SET" in str(err[8]) and "sex" in str(err[8])


def test_a_message_type_the_interface_does_not_take_is_rejected(mock):
    ack = send(mock, ADT.format(ack="|", sex="1").replace("ADT^A01^ADT_A01", "ORU^R01^ORU_R01"))
    assert str(ack.segment("MSA")[1]) == "AR"
    assert any("PROFILE-MESSAGE-TYPE" in str(seg[8]) for seg in ack.segments("ERR"))


def test_in_enhanced_mode_the_refusal_is_the_commit_ack_itself(mock):
    ack = send(mock, ADT.format(ack="AL|NE", sex="X"))  # MSH-15 AL, MSH-16 NE: no application ACK
    assert str(ack.segment("MSA")[1]) == "CE" and "PROFILE-VALUE-SET" in str(ack.segment("ERR")[8])


def test_a_profile_that_does_not_load_is_a_usage_error(tmp_path):
    import subprocess

    from tests.processes import HARNESS, ROOT

    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nfelds: {}\n", "utf-8")
    proc = subprocess.run([*HARNESS, "mock", "mllp", "--profile", str(bad)], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)  # fmt: skip
    assert proc.returncode == 2 and "unknown key(s) felds" in proc.stderr


def test_the_answer_follows_the_kind_of_error_and_keeps_waived_findings_out():
    def finding(code, segment="PID", field=8, waived=False):
        found = {
            "severity": "error",
            "code": code,
            "message": "m",
            "position": {"segment": segment, "field": field},
        }
        return found | ({"waived": {"reason": "r"}} if waived else {})

    assert answer({"findings": [finding("PROFILE-VALUE-SET", waived=True)]}).outcome == "ok"
    content = answer({"findings": [finding("PROFILE-VALUE-SET"), finding("HL7-FIELD-REQUIRED", field=3)]})
    assert content.outcome == "commit_error" and [e.code for e in content.errors] == ["103", "101"]
    assert content.errors[0].location == "PID-8"
    structure = answer({"findings": [finding("HL7-STRUCT-MISSING-SEGMENT", segment=None, field=None)]})
    assert structure.outcome == "commit_reject" and structure.errors[0].location is None
    many = answer({"findings": [finding("PROFILE-LENGTH")] * 25})
    assert len(many.errors) == 20 and "and 5 more" in many.errors[-1].text
