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
