import pytest

from harness.proxy.faults.params import RuleError
from harness.proxy.faults.rules import parse_rule

from .samples import apply_one


def test_before_forward_is_the_default():
    fault = apply_one({"type": "close"})
    plan = fault.plan
    assert plan.close_sender == "before_forward"
    assert plan.forward is False and plan.reply_to_sender is False
    assert fault.record()["params"] == {"when": "before_forward"}


def test_after_forward():
    plan = apply_one({"type": "close", "when": "after_forward"}).plan
    assert plan.close_sender == "after_forward"
    assert plan.forward is True and plan.reply_to_sender is False


def test_mid_frame_still_relays_part_of_the_reply():
    plan = apply_one({"type": "close", "when": "mid_frame"}).plan
    assert plan.close_sender == "mid_frame"
    assert plan.forward is True and plan.reply_to_sender is True


def test_response_rule_needs_a_point_after_the_forward():
    with pytest.raises(RuleError, match="after_forward or mid_frame"):
        parse_rule({"match": {"direction": "response"}, "action": {"type": "close"}})
    plan = apply_one({"type": "close", "when": "mid_frame"}, direction="response").plan
    assert plan.close_sender == "mid_frame"


def test_unknown_when_lists_the_choices():
    with pytest.raises(RuleError, match="before_forward, after_forward, mid_frame"):
        parse_rule({"action": {"type": "close", "when": "later"}})
