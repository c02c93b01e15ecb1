"""HTTP fault rules carry only RFC 9110 header names and values (harness.proxy.faults.http_fields)."""

import pytest

from harness.proxy.faults.params import RuleError
from harness.proxy.faults.rules import parse_rule


def status(**action):
    return parse_rule({"action": {"type": "status", "code": 503, **action}}, "http")


@pytest.mark.parametrize(
    ("headers", "where", "problem"),
    [
        ({"X-Note": "a\r\nSet-Cookie: stolen=1"}, "action.headers.X-Note", "CR at 1"),
        ({"X-Note": "a\nb"}, "action.headers.X-Note", "LF at 1"),
        ({"X-Note": "a\x00b"}, "action.headers.X-Note", "NUL at 1"),
        ({"X-Note": "a\x1bb"}, "action.headers.X-Note", "control character 0x1B"),
        ({"X-Note": "医保中心"}, "action.headers.X-Note", "U+533B"),
        ({"X-Note": " padded"}, "action.headers.X-Note", "whitespace"),
        ({"X Note": "v"}, "action.headers.X Note", "not an HTTP header name"),
        ({"X-Note:": "v"}, "action.headers.X-Note:", "not an HTTP header name"),
        ({"Bad\r\nName": "v"}, "action.headers.Bad\r\nName", "not an HTTP header name"),
        ({"Content-Length": "0"}, "action.headers.Content-Length", "set by the proxy"),
        ({"transfer-encoding": "chunked"}, "action.headers.transfer-encoding", "set by the proxy"),
        ({"X-Note": "v" * 9000}, "action.headers.X-Note", "at most 8192"),
    ],
)
def test_header_names_and_values_that_are_not_rfc_9110_are_refused(headers, where, problem):
    with pytest.raises(RuleError) as info:
        status(headers=headers)
    assert info.value.where == where and problem in info.value.problem


def test_content_type_is_a_field_value_too_and_is_given_once():
    with pytest.raises(RuleError, match="CR at"):
        status(content_type="text/plain\r\nX-Evil: 1")
    with pytest.raises(RuleError, match="give the type once"):
        status(content_type="text/plain", headers={"Content-Type": "application/json"})
    rule = status(headers={"Content-Type": "application/json", "X-Trace": "abc\tdef", "X-Latin": "café"})
    assert rule.action.params["content_type"] == "application/json"
    assert rule.action.params["headers"] == {"X-Trace": "abc\tdef", "X-Latin": "café"}


def test_header_match_names_are_tokens():
    with pytest.raises(RuleError) as info:
        parse_rule({"match": {"header": {"Bad Name": "x"}}, "action": {"type": "status"}}, "http")
    assert info.value.where == "match.header.Bad Name"
    assert parse_rule(
        {"match": {"header": {"SOAPAction": "re:Patient"}}, "action": {"type": "status"}}, "http"
    )
