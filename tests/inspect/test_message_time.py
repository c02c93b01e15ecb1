"""Message times for the sync delay, per kind, read from the request's first bytes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from harness.inspect.message_time import MessageClock

CST = timezone(timedelta(hours=8))


def at(*parts: int, tz=CST) -> float:
    return datetime(*parts, tzinfo=tz).timestamp()


@pytest.fixture
def clock() -> MessageClock:
    return MessageClock(CST)


def test_msh7_in_the_zone_given_or_with_its_own_offset(clock):
    head = b"MSH|^~\\&|HIS|H1|HC|H1|20260302093015||ADT^A01|1|P|2.5\rPID|1\r"
    assert clock.time_of("hl7v2", head) == at(2026, 3, 2, 9, 30, 15)
    head = b"MSH|^~\\&|HIS|H1|HC|H1|202603020130-0500||ADT^A01|1|P|2.5\r"
    assert clock.time_of("hl7v2", head) == at(2026, 3, 2, 1, 30, tz=timezone(timedelta(hours=-5)))
    head = b"MSH|^~\\&|HIS|H1|HC|H1|20260302093015.25^S||ADT^A01|1|P|2.5\r"
    assert clock.time_of("hl7v2", head) == at(2026, 3, 2, 9, 30, 15) + 0.25


def test_msh7_with_other_delimiters_and_without_a_segment_end(clock):
    head = b"MSH#$%!&#HIS#H1#HC#H1#20260302093015##ADT$A01#1#P#2.5"
    assert clock.time_of("hl7v2", head) == at(2026, 3, 2, 9, 30, 15)


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"20260302",
        b"2026030209",
        b"20261302093000",
        b"20260230093000",
        b"20260302096000",
        b"2026030209301X",
        b"20260302093000+2500",
    ],
)
def test_times_too_coarse_or_impossible_are_not_guessed(clock, value):
    head = b"MSH|^~\\&|HIS|H1|HC|H1|" + value + b"||ADT^A01|1|P|2.5\r"
    assert clock.time_of("hl7v2", head) is None


def test_not_an_hl7_message_has_no_time(clock):
    assert clock.time_of("hl7v2", b"") is None
    assert clock.time_of("hl7v2", b"MSH") is None
    assert clock.time_of("hl7v2", b"PID|1||x\r") is None
    assert clock.time_of("raw", b"MSH|^~\\&|HIS|H1|HC|H1|20260302093015||ADT^A01|1|P|2.5\r") is None


def test_medins_inf_time_in_the_json_envelope(clock):
    head = (
        b"POST /fsi/api/x HTTP/1.1\r\nContent-Type: application/json\r\n\r\n"
        b'{"infno": "2207", "inf_time" : "2026-01-05 09:30:00", "input": {}}'
    )
    assert clock.time_of("medins", head) == at(2026, 1, 5, 9, 30)
    assert clock.time_of("medins", b'{"infno": "2207", "inf_time": "yesterday"}') is None


def test_hl7v3_creation_time_plain_or_escaped_inside_soap(clock):
    plain = b'<soap:Body><PRPA_IN201311UV02><creationTime value="20260105093000"/></PRPA_IN201311UV02>'
    assert clock.time_of("soap", plain) == at(2026, 1, 5, 9, 30)
    escaped = b"<message>&lt;PRPA_IN201311UV02&gt;&lt;creationTime value=&quot;20260105093000+0800&quot;/&gt;"
    assert clock.time_of("soap", escaped) == at(2026, 1, 5, 9, 30)


def test_fhir_bundle_timestamp(clock):
    head = b'{"resourceType": "Bundle", "type": "message", "timestamp": "2026-01-05T09:30:00+08:00"}'
    assert clock.time_of("fhir", head) == at(2026, 1, 5, 9, 30)
    assert clock.time_of("fhir", b'{"timestamp": "2026-01-05T09:30:00Z"}') == at(2026, 1, 5, 9, 30, tz=UTC)
    assert clock.time_of("fhir", b'{"timestamp": "2026-01-05T09:30:00"}') == at(2026, 1, 5, 9, 30)
    assert clock.time_of("fhir", b'{"resourceType": "Patient"}') is None
