from .samples import apply_one


def test_reset_aborts_instead_of_forwarding():
    fault = apply_one({"type": "reset"})
    plan = fault.plan
    assert plan.reset_sender is True
    assert plan.forward is False and plan.reply_to_sender is False
    assert fault.record()["action"] == "reset"


def test_reset_on_response_keeps_the_forward():
    plan = apply_one({"type": "reset"}, direction="response").plan
    assert plan.reset_sender is True and plan.forward is True and plan.reply_to_sender is False
