import pytest

from .samples import apply_one


def test_default_wait_is_past_the_channel_ack_timeout():
    fault = apply_one({"type": "late_ack"}, ack_timeout_s=5)
    assert fault.plan.hold_reply_s == pytest.approx(6.0)
    assert fault.plan.forward and fault.plan.reply_to_sender and fault.plan.reply is None
    assert "5 s" in fault.record()["done"][0]


def test_explicit_after_ms():
    fault = apply_one({"type": "late_ack", "after_ms": 2500}, ack_timeout_s=30)
    assert fault.plan.hold_reply_s == pytest.approx(2.5)
    assert fault.record()["params"] == {"after_ms": 2500}


def test_works_on_a_matched_response_too():
    fault = apply_one({"type": "late_ack"}, direction="response", ack_timeout_s=1)
    assert fault.plan.hold_reply_s == pytest.approx(2.0)
