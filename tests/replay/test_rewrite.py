from datetime import UTC, datetime, timedelta

import pytest

from harness.replay.rewrite import (
    RewriteError,
    Rewriter,
    Rules,
    control_id_for,
    now_dtm,
    parse_assignment,
    parse_delta,
    shift_dtm,
)

ADT = (
    b"MSH|^~\\&|HIS|HOSP|HC|HOSP|20261124233000+0800||ADT^A01^ADT_A01|MSG0001|P|2.5\r"
    b"EVN|A01|20261124233000\r"
    b"PID|1||P12345^^^HOSP^MR||Zhang^San||19800101|M\r"
    b"ZXY|keep me|\\F\\escaped\r"
)


def test_parse_delta():
    assert parse_delta("+2h") == timedelta(hours=2)
    assert parse_delta("-1d") == timedelta(days=-1)
    assert parse_delta("-1d6h30m") == -timedelta(days=1, hours=6, minutes=30)
    assert parse_delta("90s") == timedelta(seconds=90)
    for bad in ("2 hours", "", "h", "+-1d", "1y"):
        with pytest.raises(ValueError, match="time shift"):
            parse_delta(bad)


def test_parse_assignment():
    assert parse_assignment("PID-3.1=TEST=1") == ("PID-3.1", "TEST=1")
    assert parse_assignment("PID-19=") == ("PID-19", "")
    with pytest.raises(ValueError, match="PATH=VALUE"):
        parse_assignment("PID-3")


def test_shift_keeps_precision_and_zone():
    assert shift_dtm("20261124233000+0800", timedelta(hours=1)) == "20261125003000+0800"
    assert shift_dtm("202611242330", timedelta(days=-1)) == "202611232330"
    assert shift_dtm("20261124233000.12", timedelta(seconds=1)) == "20261124233001.12"
    assert shift_dtm("20261231", timedelta(days=1)) == "20270101"
    with pytest.raises(RewriteError, match="not an HL7 timestamp"):
        shift_dtm("yesterday", timedelta(hours=1))
    with pytest.raises(RewriteError, match="not a valid date"):
        shift_dtm("20261340", timedelta(hours=1))


def test_now_uses_zone_of_original():
    now = datetime(2026, 11, 25, 1, 2, 3, tzinfo=UTC).timestamp()
    assert now_dtm("20261124233000+0800", now) == "20261125090203+0800"
    assert len(now_dtm(None, now)) == 14


def test_now_keeps_the_fraction_digits_and_the_zone_even_of_a_coarse_original():
    now = datetime(2026, 11, 25, 1, 2, 3, 456789, tzinfo=UTC).timestamp()
    assert now_dtm("20261124233000.12+0800", now) == "20261125090203.45+0800"
    assert now_dtm("20261124233000.1234-0500", now) == "20261124200203.4567-0500"
    assert now_dtm("202611242330+0800", now) == "20261125090203+0800"  # minutes: seconds at least, zone kept
    assert now_dtm("20261124+0000", now) == "20261125010203+0000"
    local = now_dtm("20261124233000", now)
    assert len(local) == 14 and not any(c in local for c in "+-")  # no zone given, none invented
    assert now_dtm("yesterday", now) == local


def test_empty_rules_send_captured_bytes():
    out = Rewriter(Rules()).apply(ADT, control_id="MSG0001")
    assert out.payload is ADT
    assert out.control_id == out.original_control_id == "MSG0001"


def test_all_rules_and_untouched_bytes_elsewhere():
    rules = Rules(
        new_control_ids=True,
        shift_time=timedelta(hours=2),
        retarget_app="HC_TEST",
        retarget_facility="TESTHOSP",
        sets=(("PID-3.1", "TEST999"),),
    )
    rw = Rewriter(rules)
    out = rw.apply(ADT, new_control_id="R7-1")
    segs = out.payload.split(b"\r")
    assert segs[0] == (b"MSH|^~\\&|HIS|HOSP|HC_TEST|TESTHOSP|20261125013000+0800||ADT^A01^ADT_A01|R7-1|P|2.5")
    assert segs[1] == b"EVN|A01|20261124233000"
    assert segs[2] == b"PID|1||TEST999^^^HOSP^MR||Zhang^San||19800101|M"
    assert segs[3] == b"ZXY|keep me|\\F\\escaped"
    assert out.control_id == "R7-1" and out.original_control_id == "MSG0001"
    assert rw.id_map == {"MSG0001": "R7-1"}
    assert ("MSH-10", "MSG0001", "R7-1") in out.changes
    assert ADT.startswith(b"MSH|^~\\&|HIS|HOSP|HC|HOSP|20261124233000+0800")  # original untouched


def test_time_now():
    rw = Rewriter(Rules(time_now=True), clock=lambda: datetime(2026, 11, 25, 0, 0, tzinfo=UTC).timestamp())
    out = rw.apply(ADT)
    assert out.payload.split(b"|")[6] == b"20261125080000+0800"


def test_gbk_message_rewritten_in_its_charset():
    text = "MSH|^~\\&|HIS|医院|HC|HOSP|20261124||ADT^A01|M1|P|2.5|||||CHN|GBK\rPID|1||P1||张三\r"
    out = Rewriter(Rules(new_control_ids=True)).apply(text.encode("gbk"), new_control_id="R1-1")
    assert out.payload == text.replace("|M1|", "|R1-1|").encode("gbk")


def test_unparseable_message_is_a_rewrite_error():
    with pytest.raises(RewriteError, match="does not parse"):
        Rewriter(Rules(time_now=True)).apply(b"not hl7 at all")


def test_rule_conflicts_and_stable_ids():
    with pytest.raises(ValueError, match="cannot be combined"):
        Rules(shift_time=timedelta(hours=1), time_now=True)
    assert control_id_for(12, 3456, 0) == "R12-3456"
    assert control_id_for(12, None, 7) == "R12-F7"
    r = Rules(new_control_ids=True, shift_time=timedelta(hours=-3), sets=(("PID-3", "X"),))
    assert Rules.from_json(r.to_json()) == r
