import pytest

from harness.proxy.faults.params import RuleError
from harness.proxy.faults.rules import parse_rule
from tests.proxy.faults.http.views import decide, medins


def test_reset_before_and_after_forward():
    _, plan = decide({"action": {"type": "reset"}}, medins())
    assert plan.reset and not plan.forward
    _, plan = decide({"action": {"type": "reset", "when": "after_forward"}}, medins())
    assert plan.reset and plan.forward


def test_response_rules_cannot_reset_before_forwarding():
    with pytest.raises(RuleError, match="action.when"):
        parse_rule(
            {"match": {"direction": "response"}, "action": {"type": "reset", "when": "before_forward"}},
            "http",
        )
