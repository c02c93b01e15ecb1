"""Content regexes run on RE2: a catastrophic pattern costs what any other does; backtracking-only
constructs are refused when the rule is added."""

import pytest

from harness.proxy.faults.linear_regex import compile_regex
from harness.proxy.faults.params import RuleError
from harness.proxy.faults.rules import parse_rule, value_matcher
from tests.mock_mllp_process import start_mock
from tests.proxy.proxy_process import Sender, start_proxy, write_config


@pytest.mark.timeout(30)  # Python's re needs about 2**50000 steps here: a regression hangs, then fails
def test_a_catastrophic_pattern_answers_at_once():
    matches = value_matcher("re:^(a+)+$", "match.meta.control_id")
    assert matches("a" * 50_000 + "b") is False
    assert matches("a" * 50_000) is True
    assert value_matcher(["re:(x+x+)+y", "re:^(\\w+\\s?)*$"], "m")("x" * 40_000 + "!") is False


@pytest.mark.parametrize(
    ("pattern", "named"),
    [
        ("(?=ADT)A", "look-around"),
        ("(?<!X)A", "look-around"),
        ("(A)\\1", "backreference"),
        ("(?P<c>A)(?P=c)", "backreference"),
        ("(?>A+)B", "atomic group"),
        ("A++B", "possessive"),
        ("(a{1000}){1000}", "cannot run on RE2"),
    ],
)
def test_constructs_that_need_backtracking_are_refused_with_the_reason(pattern, named):
    with pytest.raises(RuleError) as info:
        parse_rule({"match": {"meta": {"control_id": f"re:{pattern}"}}, "action": {"type": "drop"}})
    assert info.value.where == "match.meta.control_id" and named in info.value.problem
    with pytest.raises(RuleError, match=named):
        parse_rule({"match": {"message_type": f"re:{pattern}"}, "action": {"type": "drop"}})


def test_python_spellings_mean_the_same_on_re2():
    assert compile_regex("\\u4e2d\\u6587", "w").search("是中文") is not None
    assert compile_regex("^ADT\\Z", "w").search("ADT") is not None
    assert compile_regex("^ADT\\Z", "w").search("ADTX") is None
    assert compile_regex("\\\\1", "w").search("a\\1") is not None  # an escaped backslash, not a backreference
    with pytest.raises(RuleError, match="bad regular expression"):
        compile_regex("(", "w")
    with pytest.raises(RuleError, match="longer than 1000"):
        compile_regex("a" * 1001, "w")


@pytest.mark.timeout(60)
def test_a_catastrophic_rule_does_not_stall_a_running_proxy(processes, tmp_path):
    """Through `harness proxy`: a path rule `^(a+)+$` against a 40-character name that almost matches
    (about 2**40 backtracking steps on Python's re) answers as fast as any other message."""
    mock = start_mock(processes)
    rule = {"match": {"paths": {"PID-5.1": "re:^(a+)+$"}}, "action": {"type": "nak", "code": "AR"}}
    config, port = write_config(tmp_path, upstream=f"127.0.0.1:{mock.port}", capture="off", faults=[rule])
    start_proxy(processes, config, port)
    sender = Sender(port, timeout=20)
    name = "a" * 40
    for control_id, family, code in (("R1", name + "!", b"AA"), ("R2", name, b"AR"), ("R3", "ZHANG", b"AA")):
        message = (
            f"MSH|^~\\&|HIS|HOSP|HC|HOSP|20260101120000||ADT^A01^ADT_A01|{control_id}|P|2.5\r"
            f"PID|1||900001^^^HOSP^MR||{family}^SAN\r"
        ).encode()
        reply = sender.exchange(message)
        assert reply is not None and b"MSA|" + code + b"|" + control_id.encode() in reply
    sender.close()
