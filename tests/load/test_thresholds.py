import pytest

from harness.load.thresholds import ThresholdError, evaluate, merge, parse_flag, parse_section


def results(**totals):
    base = {
        "requests": 1000,
        "failures": 2,
        "error_rate": 0.002,
        "rate": 50.0,
        "p50_ms": 5.0,
        "p95_ms": 40.0,
        "p99_ms": 90.0,
        "max_ms": 300.0,
        "p90_ms": 20.0,
    }
    base.update(totals)
    return {
        "totals": base,
        "by_name": {"ADT^A04": {**base, "p95_ms": 70.0}, "2207": {"requests": 0}},
        "open": {"scheduled": 1000, "started": 960, "backlog_max": 12},
    }


def test_profile_thresholds_with_types_and_flags_that_replace_them():
    profile = parse_section(
        {"p95_ms": 500, "error_rate": "1%", "min_rate": "95%", "by_type": {"ADT^A04": {"p95_ms": 300}}}
    )
    flags = [
        parse_flag("p95_ms=50"),
        parse_flag("ADT^A04:p99_ms=800"),
        parse_flag("create Patient:p95_ms=200"),
    ]
    rules = merge(profile, flags)
    assert [(t.scope, t.key, t.limit) for t in rules] == [
        (None, "error_rate", 0.01),
        (None, "min_rate", 0.95),
        ("ADT^A04", "p95_ms", 300.0),
        (None, "p95_ms", 50.0),
        ("ADT^A04", "p99_ms", 800.0),
        ("create Patient", "p95_ms", 200.0),
    ]
    assert rules[1].relative and rules[1].describe() == "rate >= 95% of the target"


def test_evaluation_passes_fails_and_leaves_types_without_requests_unjudged():
    rules = parse_section(
        {
            "p95_ms": 50,
            "p99_ms": 80,
            "error_rate": 0.01,
            "min_rate": "95%",
            "max_backlog": 20,
            "by_type": {"ADT^A04": {"p95_ms": 60}, "2207": {"p95_ms": 1000}},
        }
    )
    judged = {(r["scope"], r["key"]): r for r in evaluate(rules, results())}
    assert judged[(None, "p95_ms")]["passed"] is True
    assert judged[(None, "p99_ms")]["passed"] is False and judged[(None, "p99_ms")]["actual"] == 90.0
    assert judged[(None, "error_rate")]["passed"] is True
    assert judged[(None, "min_rate")]["actual"] == 0.96 and judged[(None, "min_rate")]["passed"] is True
    assert judged[(None, "max_backlog")]["passed"] is True
    assert judged[("ADT^A04", "p95_ms")]["passed"] is False
    assert (
        judged[("2207", "p95_ms")]["passed"] is None
        and "no 2207 requests" in judged[("2207", "p95_ms")]["note"]
    )


def test_a_run_without_requests_fails_its_run_wide_thresholds():
    judged = evaluate(parse_section({"p95_ms": 50}), {"totals": {"requests": 0}, "by_name": {}})
    assert judged[0]["passed"] is False and judged[0]["note"] == "no requests"


@pytest.mark.parametrize(
    "text, words",
    [
        ("p95=50", ["unknown threshold 'p95'", "p95_ms"]),
        ("p95_ms", ["KEY=VALUE"]),
        ("p95_ms=fast", ["'fast' is not a number"]),
        ("error_rate=5", ["fraction", "'1%'"]),
        ("p95_ms=5%", ["takes a number"]),
        ("ADT^A04:min_rate=90%", ["whole run only"]),
        ("p99_ms=-1", [">= 0"]),
    ],
)
def test_bad_thresholds_say_what_and_where(text, words):
    with pytest.raises(ThresholdError) as err:
        parse_flag(text)
    for word in words:
        assert word in str(err.value)
    with pytest.raises(ThresholdError, match=r"thresholds.by_type.ADT\^A04"):
        parse_section({"by_type": {"ADT^A04": {"p95": 1}}})
