import pytest

from harness.proxy.faults.params import RuleError
from harness.proxy.faults.rules import parse_rule

from .samples import apply_one


def test_throttles_the_matched_direction_by_default():
    plan = apply_one({"type": "throttle", "bytes_per_s": 100}).plan
    assert plan.throttle_request_bps == 100 and plan.throttle_reply_bps is None
    plan = apply_one({"type": "throttle", "bytes_per_s": 50}, direction="response").plan
    assert plan.throttle_reply_bps == 50 and plan.throttle_request_bps is None


def test_both_ways():
    plan = apply_one({"type": "throttle", "bytes_per_s": 10, "target": "both"}).plan
    assert plan.throttle_request_bps == 10 and plan.throttle_reply_bps == 10


@pytest.mark.parametrize("rate", [0, -5, 1.5, "1k"])
def test_bad_rate(rate):
    with pytest.raises(RuleError) as err:
        parse_rule({"action": {"type": "throttle", "bytes_per_s": rate}})
    assert err.value.where == "action.bytes_per_s"


def test_a_response_rule_cannot_throttle_the_request():
    with pytest.raises(RuleError, match="already forwarded"):
        parse_rule(
            {
                "match": {"direction": "response"},
                "action": {"type": "throttle", "bytes_per_s": 9, "target": "both"},
            }
        )
