import pytest

from harness.proxy.faults.params import RuleError
from harness.proxy.faults.rules import parse_rule
from tests.proxy.faults.http.views import decide, medins


def test_slow_body_sets_the_rate():
    _, plan = decide({"action": {"type": "slow_body", "bps": 500}}, medins())
    assert plan.body_bps == 500 and plan.forward


def test_rate_is_required():
    with pytest.raises(RuleError, match="action.bps: required"):
        parse_rule({"action": {"type": "slow_body"}}, "http")
