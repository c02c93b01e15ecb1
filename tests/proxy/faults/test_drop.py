from .samples import apply_one


def test_dropped_request_is_neither_forwarded_nor_answered():
    fault = apply_one({"type": "drop"})
    plan = fault.plan
    assert plan.forward is False
    assert plan.reply_to_sender is False and plan.reply is None
    assert fault.record()["action"] == "drop"
    assert "not forwarded" in fault.record()["done"][0]


def test_dropped_response_was_forwarded_but_never_relayed():
    plan = apply_one({"type": "drop"}, direction="response").plan
    assert plan.forward is True
    assert plan.reply_to_sender is False
