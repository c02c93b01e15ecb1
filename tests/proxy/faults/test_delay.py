import pytest

from harness.proxy.faults.params import RuleError
from harness.proxy.faults.plan import Plan

from .samples import apply_one


def test_request_delay_waits_before_forwarding():
    fault = apply_one({"type": "delay", "ms": 250})
    plan = fault.plan
    assert plan.delay_s == pytest.approx(0.25)
    assert plan.forward and plan.reply_to_sender and plan.hold_reply_s == 0
    assert fault.record()["action"] == "delay"
    assert fault.record()["params"] == {"ms": 250, "jitter_ms": 0}
    assert "250 ms" in fault.record()["done"][0]


def test_response_delay_holds_the_reply():
    plan = apply_one({"type": "delay", "ms": 100}, direction="response").plan
    assert plan.delay_s == 0 and plan.hold_reply_s == pytest.approx(0.1)


def test_jitter_stays_within_bounds_and_repeats_with_a_seed():
    from harness.proxy.faults.engine import FaultEngine

    def delays(seed):
        rule = {"match": {"seed": seed}, "action": {"type": "delay", "ms": 100, "jitter_ms": 50}}
        engine = FaultEngine(rules=[rule])
        return [engine.decide("request", b"x", None).plan.delay_s for _ in range(50)]

    first = delays(7)
    assert first == delays(7)
    assert first != delays(8)
    assert all(0.05 <= d <= 0.15 for d in first)
    assert len(set(first)) > 1


def test_plan_defaults_untouched_by_a_zero_delay():
    plan = apply_one({"type": "delay", "ms": 0}).plan
    assert plan.delay_s == 0 and plan.forward_payload is None and plan.reply is None
    assert plan.forward_count == Plan().forward_count


@pytest.mark.parametrize(
    ("action", "where"),
    [
        ({"type": "delay"}, "action.ms"),
        ({"type": "delay", "ms": -1}, "action.ms"),
        ({"type": "delay", "ms": "fast"}, "action.ms"),
        ({"type": "delay", "ms": 10, "jitter": 5}, "action.jitter"),
    ],
)
def test_bad_params_name_the_key(action, where):
    from harness.proxy.faults.rules import parse_rule

    with pytest.raises(RuleError) as err:
        parse_rule({"action": action})
    assert err.value.where == where
    assert where in str(err.value)
