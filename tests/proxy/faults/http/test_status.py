import pytest

from harness.proxy.faults.params import RuleError
from harness.proxy.faults.rules import parse_rule
from tests.proxy.faults.http.views import decide, medins


def test_status_answers_instead_of_forwarding():
    _, plan = decide({"action": {"type": "status", "code": 503}}, medins())
    assert not plan.forward and plan.reply.status == 503 and plan.reply.reason == "Service Unavailable"
    assert b"fault rule" in plan.reply.body


def test_429_gets_retry_after_and_custom_headers_and_body():
    _, plan = decide(
        {
            "action": {
                "type": "status",
                "code": 429,
                "retry_after": 7,
                "body": "slow down",
                "headers": {"X-Why": "test"},
            }
        },
        medins(),
    )
    headers = dict(plan.reply.headers)
    assert headers["Retry-After"] == "7" and headers["X-Why"] == "test" and plan.reply.body == b"slow down"
    _, plan = decide({"action": {"type": "status", "code": 429}}, medins())
    assert dict(plan.reply.headers)["Retry-After"] == "1"


def test_response_direction_replaces_the_upstream_answer():
    _, plan = decide(
        {"match": {"direction": "response"}, "action": {"type": "status", "code": 502}}, medins(), "response"
    )
    assert plan.reply.status == 502 and plan.forward


def test_bad_code_names_the_key():
    with pytest.raises(RuleError, match="action.code: must be at most 599"):
        parse_rule({"action": {"type": "status", "code": 700}}, "http")
