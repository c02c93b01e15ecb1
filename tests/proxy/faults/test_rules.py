import pytest

from harness.proxy.faults.actions import known_types
from harness.proxy.faults.context import FaultContext
from harness.proxy.faults.engine import FaultEngine
from harness.proxy.faults.params import RuleError
from harness.proxy.faults.rules import parse_rule, parse_rules

from .samples import adt, meta_of


def test_known_action_types():
    assert known_types("mllp") == [
        "delay", "drop", "nak", "late_ack", "corrupt", "close", "reset", "duplicate", "throttle", "hold_reply"
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("rule", "where", "text"),
    [
        ({"action": {"type": "nack"}}, "action.type", "known types: delay, drop, nak"),
        ({"action": {}}, "action.type", "required (one of: delay"),
        ({"match": {}}, "action", "required"),
        ({"action": "drop"}, "action", "expected a JSON object"),
        (
            {"action": {"type": "drop"}, "limt": 3},
            "limt",
            "unknown key; known keys here: action, description, id",
        ),
        ({"match": {"evry_nth": 3}, "action": {"type": "drop"}}, "match.evry_nth", "known keys here"),
        ({"match": {"direction": "up"}, "action": {"type": "drop"}}, "match.direction", "request, response"),
        ({"match": {"every_nth": 0}, "action": {"type": "drop"}}, "match.every_nth", "at least 1"),
        ({"match": {"first_n": 2.5}, "action": {"type": "drop"}}, "match.first_n", "integer"),
        ({"match": {"probability": 1.5}, "action": {"type": "drop"}}, "match.probability", "at most 1"),
        ({"match": {"message_type": "ADT-A01"}, "action": {"type": "drop"}}, "match.message_type", "ADT^A01"),
        ({"match": {"message_type": []}, "action": {"type": "drop"}}, "match.message_type", "empty list"),
        (
            {"match": {"paths": {"PID-3.1": "re:("}}, "action": {"type": "drop"}},
            "match.paths.PID-3.1",
            "regular",
        ),
        ({"match": {"paths": {"pid": "1"}}, "action": {"type": "drop"}}, "match.paths.pid", "terse path"),
        ({"match": {"meta": {"app": "HIS"}}, "action": {"type": "drop"}}, "match.meta.app", "sending_app"),
        ({"action": {"type": "drop"}, "limit": 0}, "limit", "at least 1"),
        ({"id": "has space", "action": {"type": "drop"}}, "id", "letters"),
        ([], "", "expected a JSON object"),
    ],
)
def test_validation_names_the_bad_key(rule, where, text):
    with pytest.raises(RuleError) as err:
        parse_rule(rule)
    assert err.value.where == where
    assert text in err.value.problem, err.value.problem


def test_action_errors_name_the_action_key():
    with pytest.raises(RuleError, match=r"^action\.ms: "):
        parse_rule({"action": {"type": "delay", "ms": None, "jitter_ms": 1}})


def test_config_list_errors_say_which_rule():
    with pytest.raises(RuleError) as err:
        parse_rules([{"action": {"type": "drop"}}, {"action": {"type": "delay", "ms": -3}}])
    assert str(err.value).startswith("faults[1].action.ms: must be at least 0")
    assert [r.action.type for r in parse_rules([{"action": {"type": "drop"}}])] == ["drop"]
    assert parse_rules(None) == []
    with pytest.raises(RuleError, match="faults: expected a list"):
        parse_rules({"action": {"type": "drop"}})


def test_unknown_protocol_has_no_actions_yet():
    with pytest.raises(RuleError, match="for smtp; known types: \\(none yet\\)"):
        parse_rule({"action": {"type": "drop"}}, protocol="smtp")


def test_match_source_round_trips():
    rule = parse_rule({"match": {"message_type": "ADT^A0*", "every_nth": 2}, "action": {"type": "drop"}})
    assert rule.to_json()["match"] == {"message_type": "ADT^A0*", "every_nth": 2, "direction": "request"}
    again = parse_rule({"match": rule.to_json()["match"], "action": rule.to_json()["action"]})
    assert again.to_json()["match"] == rule.to_json()["match"]


# --- content matching over real metadata and the real parser -------------------------------------


def _engine(match: dict) -> FaultEngine:
    return FaultEngine(rules=[{"match": match, "action": {"type": "drop"}}])


def _fires(engine: FaultEngine, payload: bytes) -> bool:
    return engine.decide("request", payload, meta_of(payload), FaultContext()) is not None


@pytest.mark.parametrize(
    ("pattern", "fires_on"),
    [
        ("ADT^A01", {"ADT^A01^ADT_A01"}),
        ("adt^a01", {"ADT^A01^ADT_A01"}),
        ("ADT", {"ADT^A01^ADT_A01", "ADT^A08^ADT_A01", "ADT^A04", "ADT^A11^ADT_A09"}),
        ("ADT^A0*", {"ADT^A01^ADT_A01", "ADT^A08^ADT_A01", "ADT^A04"}),
        ("ADT^A0[14]", {"ADT^A01^ADT_A01", "ADT^A04"}),
        (["ORU^R01", "ADT^A04"], {"ORU^R01^ORU_R01", "ADT^A04"}),
        ("re:^(ORU|ADT\\^A08)", {"ORU^R01^ORU_R01", "ADT^A08^ADT_A01"}),
    ],
)
def test_message_type(pattern, fires_on):
    pytest.importorskip("harness.hl7v2.meta")
    codes = ["ADT^A01^ADT_A01", "ADT^A08^ADT_A01", "ADT^A04", "ORU^R01^ORU_R01", "ADT^A11^ADT_A09"]
    engine = _engine({"message_type": pattern})
    assert {code for code in codes if _fires(engine, adt(code=code))} == fires_on


def test_message_type_never_matches_without_metadata():
    engine = _engine({"message_type": "ADT"})
    assert engine.decide("request", adt(), None) is None


def test_meta_fields():
    pytest.importorskip("harness.hl7v2.meta")
    assert _fires(_engine({"meta": {"sending_app": "HIS", "processing_id": "re:^P"}}), adt())
    assert not _fires(_engine({"meta": {"sending_app": "LIS"}}), adt())


def test_every_nth_counts_only_matching_messages():
    pytest.importorskip("harness.hl7v2.meta")
    engine = _engine({"message_type": "ADT^A01", "every_nth": 2})
    results = [
        _fires(engine, adt(code=c))
        for c in ["ADT^A01", "ORU^R01", "ADT^A01", "ORU^R01", "ADT^A01", "ADT^A01"]
    ]
    assert results == [False, False, True, False, False, True]


def test_paths_parse_only_when_asked():
    pytest.importorskip("harness.hl7v2.message")
    pytest.importorskip("harness.hl7v2.meta")
    engine = _engine({"message_type": "ADT", "paths": {"PID-3.1": "re:^9", "PID-8": "M"}})
    assert _fires(engine, adt(pid3="900001"))
    assert not _fires(engine, adt(pid3="100001"))
    # metadata is checked first: a non-ADT message never reaches the parser
    assert not _fires(engine, adt(code="ORU^R01", pid3="900001"))
    assert engine.list()[0].seen == 1


def test_paths_on_an_unparseable_message_do_not_match():
    pytest.importorskip("harness.hl7v2.message")
    engine = _engine({"paths": {"PID-3.1": "re:^9"}})
    assert not _fires(engine, b"\xff\xfe garbage without MSH")


def test_null_matches_an_absent_value():
    pytest.importorskip("harness.hl7v2.message")
    engine = _engine({"paths": {"PID-30": None}})
    assert _fires(engine, adt())


def test_cheap_conditions_run_before_parsing_and_parsing_happens_once():
    pytest.importorskip("harness.hl7v2.message")
    from harness.proxy.faults.rules import Paths, Subject

    match = {"paths": {"PID-3.1": "9"}, "message_type": "ORU"}
    rule = parse_rule({"match": match, "action": {"type": "drop"}})
    assert isinstance(rule.match.conditions[-1], Paths)
    payload = adt()
    subject = Subject("request", payload, meta_of(payload), FaultContext())
    if subject.meta is not None:
        assert not rule.fires(subject)
        # never parsed: the type did not match
        assert subject._message is None and subject.parse_error is None

    first = parse_rule({"match": {"paths": {"PID-3.1": "1"}}, "action": {"type": "drop"}})
    second = parse_rule({"match": {"paths": {"PID-8": "F"}}, "action": {"type": "drop"}})
    subject = Subject("request", payload, None, FaultContext())
    assert not first.fires(subject)
    parsed = subject._message
    assert parsed is not None
    assert not second.fires(subject)
    assert subject._message is parsed


# --- any JSON gets a rule or a RuleError, never another exception -------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 10**6), st.floats(allow_nan=True), st.text(max_size=8),
    st.sampled_from(["ADT^A01", "re:(", "re:^9", "AE", "AA", "flip_byte", "truncate", "mid_frame", "PID-3"]),
)  # fmt: skip
_json = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
_match_keys = st.sampled_from(
    ["direction", "message_type", "meta", "paths", "every_nth", "first_n", "probability", "seed", "bogus"]
)
_action_keys = st.sampled_from(
    ["ms", "jitter_ms", "code", "text", "after_ms", "mode", "target", "when", "count", "bytes_per_s",
     "framing", "offset", "keep_bytes", "charset", "seed", "error_location", "bogus"]
)  # fmt: skip
_rules = st.fixed_dictionaries(
    {
        "match": st.one_of(_json, st.dictionaries(_match_keys, _json, max_size=4)),
        "action": st.one_of(
            _json,
            st.builds(
                lambda t, rest: {"type": t, **rest},
                st.sampled_from([*known_types("mllp"), "nack", 3]),
                st.dictionaries(_action_keys, _json, max_size=4),
            ),
        ),
    },
    optional={"limit": _json, "id": _json, "description": _json, "extra": _json},
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_rules)
def test_any_json_is_a_rule_or_a_rule_error(data):
    try:
        rule = parse_rule(data)
    except RuleError as exc:
        assert exc.where is not None and exc.problem
        return
    engine = FaultEngine(rules=[rule])
    for direction in ("request", "response"):
        engine.decide(direction, adt(), meta_of(adt()), FaultContext(request=adt()))
    assert rule.errors == 0, rule.last_error


_plausible_match = st.fixed_dictionaries(
    {},
    optional={
        "direction": st.sampled_from(["request", "response"]),
        "message_type": st.sampled_from(["ADT^A01", "ADT", "ADT^A0*", "ORU", ["ORU", "ADT^A01"], "re:^ADT"]),
        "paths": st.sampled_from([{"PID-3.1": "re:^9"}, {"PID-8": "M"}, {"PID-30": None}]),
        "meta": st.sampled_from([{"sending_app": "HIS"}, {"processing_id": "re:^P"}]),
        "every_nth": st.integers(1, 3),
        "first_n": st.integers(1, 3),
        "probability": st.floats(0, 1),
        "seed": st.integers(0, 100),
    },
)
_plausible_params = {
    "ms": st.floats(0, 50), "jitter_ms": st.floats(0, 50), "code": st.sampled_from(["AE", "AR", "AA", "CE"]),
    "text": st.text(max_size=10), "after_ms": st.floats(0, 10), "mode": st.sampled_from(
        ["flip_byte", "truncate", "wrong_charset", "break_framing"]),
    "target": st.sampled_from(["request", "response", "both"]), "when": st.sampled_from(
        ["before_forward", "after_forward", "mid_frame"]),
    "count": st.integers(2, 4), "bytes_per_s": st.integers(1, 10_000), "seed": st.integers(0, 9),
}  # fmt: skip


@st.composite
def _plausible_rules(draw):
    kind = draw(st.sampled_from(known_types("mllp")))
    keys = draw(st.sets(st.sampled_from(sorted(_plausible_params)), max_size=4))
    action = {"type": kind, **{key: draw(_plausible_params[key]) for key in keys}}
    return {"match": draw(_plausible_match), "action": action, "limit": draw(st.integers(1, 3))}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_plausible_rules(), st.lists(st.sampled_from(["900001", "100001"]), min_size=1, max_size=4))
def test_plausible_rules_apply_without_errors(data, pids):
    try:
        rule = parse_rule(data)
    except RuleError:
        return
    engine = FaultEngine(rules=[rule])
    for pid in pids:
        payload = adt(pid3=pid)
        ctx = FaultContext(request=payload, ack_timeout_s=1)
        fault = engine.decide(rule.direction, payload, meta_of(payload), ctx)
        if fault is not None:
            record = fault.record()
            assert record["action"] == rule.action.type and record["done"]
            if fault.plan.reply_transform is not None:
                fault.plan.reply_transform(b"MSH|^~\\&|A\rMSA|AA|X\r")
            if fault.plan.reply_raw_transform is not None:
                fault.plan.reply_raw_transform(b"\x0bMSH|^~\\&|A\rMSA|AA|X\r\x1c\r")
    assert rule.errors == 0, rule.last_error
    assert rule.hits <= 3
