from tests.proxy.faults.http.views import decide, medins


def test_delay_request_and_response():
    applied, plan = decide({"action": {"type": "delay", "ms": 250}}, medins())
    assert applied is not None and plan.delay_s == 0.25 and plan.forward and plan.reply is None
    _, plan = decide(
        {"match": {"direction": "response"}, "action": {"type": "delay", "ms": 100}}, medins(), "response"
    )
    assert plan.hold_s == 0.1 and plan.delay_s == 0


def test_jitter_stays_within_bounds_and_repeats_with_a_seed():
    rule = {"match": {"seed": 3}, "action": {"type": "delay", "ms": 100, "jitter_ms": 50}}
    a = decide(rule, medins())[1].delay_s
    b = decide(rule, medins())[1].delay_s
    assert 0.05 <= a <= 0.15 and a == b
