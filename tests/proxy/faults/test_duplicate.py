import pytest

from harness.proxy.faults.params import RuleError
from harness.proxy.faults.rules import parse_rule

from .samples import apply_one


def test_forwarded_twice_by_default():
    fault = apply_one({"type": "duplicate"})
    assert fault.plan.forward_count == 2
    assert fault.plan.forward and fault.plan.forward_payload is None
    assert fault.record()["params"] == {"count": 2}


def test_count():
    assert apply_one({"type": "duplicate", "count": 3}).plan.forward_count == 3


def test_count_below_two_is_refused():
    with pytest.raises(RuleError, match=r"action\.count: must be at least 2"):
        parse_rule({"action": {"type": "duplicate", "count": 1}})


def test_cannot_act_on_a_response():
    with pytest.raises(RuleError) as err:
        parse_rule({"match": {"direction": "response"}, "action": {"type": "duplicate"}})
    assert err.value.where == "match.direction"
    assert "request" in err.value.problem
