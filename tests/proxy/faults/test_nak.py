import pytest

from harness.proxy.faults.engine import FaultEngine
from harness.proxy.faults.params import RuleError
from harness.proxy.faults.rules import parse_rule

from .samples import ack, adt, apply_one

ack_module = pytest.importorskip("harness.hl7v2.ack")


def _segments(reply: bytes) -> list[list[str]]:
    return [segment.split("|") for segment in reply.decode().split("\r") if segment]


def test_nak_answers_ae_against_the_request_and_does_not_forward():
    fault = apply_one({"type": "nak", "code": "AE", "text": "ward closed"}, payload=adt("CTRL42"))
    plan = fault.plan
    assert plan.forward is False and plan.reply_to_sender is True
    msa = next(s for s in _segments(plan.reply) if s[0] == "MSA")
    assert msa[1] == "AE" and msa[2] == "CTRL42"
    assert b"ward closed" in plan.reply
    assert fault.record()["params"]["code"] == "AE"
    assert "AE" in fault.record()["done"][0]


def test_default_is_ae_never_aa():
    reply = apply_one({"type": "nak"}).plan.reply
    msa = next(s for s in _segments(reply) if s[0] == "MSA")
    assert msa[1] == "AE"
    assert b"fault injected by harness rule r1" in reply


def test_ar():
    reply = apply_one({"type": "nak", "code": "AR"}).plan.reply
    assert next(s for s in _segments(reply) if s[0] == "MSA")[1] == "AR"


def test_aa_only_when_explicit():
    reply = apply_one({"type": "nak", "code": "AA"}).plan.reply
    assert next(s for s in _segments(reply) if s[0] == "MSA")[1] == "AA"


def test_response_rule_replaces_the_upstream_reply_with_a_nak_for_the_request():
    fault = apply_one({"type": "nak", "code": "AR"}, direction="response", request=adt("REQ7"))
    plan = fault.plan
    assert plan.forward is True
    msa = next(s for s in _segments(plan.reply) if s[0] == "MSA")
    assert msa[1:3] == ["AR", "REQ7"]


def test_response_rule_without_the_request_does_not_fire_and_reports_why():
    engine = FaultEngine(rules=[{"match": {"direction": "response"}, "action": {"type": "nak"}}])
    assert engine.decide("response", ack(), None) is None
    listed = engine.list()[0].to_json()
    assert listed["errors"] == 1 and "FaultContext.request" in listed["last_error"]
    assert listed["hits"] == 0


def test_unknown_code_lists_the_codes():
    with pytest.raises(RuleError, match=r"action\.code: 'XX' is not one of AE, AR"):
        parse_rule({"action": {"type": "nak", "code": "XX"}})


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("ward\x0bclosed", "MLLP start block 0x0B at 4"),
        ("ward closed\x1c", "MLLP end block 0x1C at 11"),
        ("nul\x00", "control character 0x00"),
        ("esc \x1b[2J", "control character 0x1B"),
        ("c1 \x9b2J", "control character 0x9B"),
        ("x" * 2001, "at most 2000"),
    ],
)
def test_nak_text_that_would_break_the_frame_is_refused(text, problem):
    for key in ("text", "error_location"):
        with pytest.raises(RuleError) as info:
            parse_rule({"action": {"type": "nak", key: text}})
        assert info.value.where == f"action.{key}" and problem in info.value.problem


def test_cr_lf_and_delimiters_in_nak_text_are_escaped_inside_one_err_field():
    from harness.mllp import encode

    text = "line one\rline two\n|^~\\& end"
    reply = apply_one({"type": "nak", "code": "AE", "text": text}, payload=adt("C9")).plan.reply
    assert encode(reply)  # frames: no 0x0B / 0x1C inside
    segments = [s for s in reply.split(b"\r") if s]
    assert [s[:3] for s in segments] == [b"MSH", b"MSA", b"ERR"]
    assert b"\\X0D\\" in reply and b"\\X0A\\" in reply and b"\\F\\" in reply


def test_a_bad_error_location_is_refused_when_the_rule_is_added():
    with pytest.raises(RuleError) as info:
        parse_rule({"action": {"type": "nak", "error_location": "not a path"}})
    assert info.value.where == "action.error_location" and "PID-5.1" in info.value.problem
    assert parse_rule({"action": {"type": "nak", "error_location": "PID-3.1"}})
