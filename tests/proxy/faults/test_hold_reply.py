import pytest

from harness.proxy.faults.params import RuleError
from harness.proxy.faults.rules import parse_rule

from .samples import apply_one


def test_reply_is_held_and_request_goes_at_once():
    fault = apply_one({"type": "hold_reply", "ms": 1500})
    assert fault.plan.hold_reply_s == pytest.approx(1.5)
    assert fault.plan.delay_s == 0 and fault.plan.forward
    assert fault.record()["params"] == {"ms": 1500}


def test_ms_is_required():
    with pytest.raises(RuleError, match=r"action\.ms: required"):
        parse_rule({"action": {"type": "hold_reply"}})
