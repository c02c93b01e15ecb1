"""Waivers: a reason is required, an expired waiver is itself a finding, locations and selectors match."""

from __future__ import annotations

import datetime as dt

import pytest

from harness.hl7v2.validation import waivers
from harness.hl7v2.validation.validator import validate

MSG = (
    "MSH|^~\\&|HIS|H53|HC|H53|20240301083000||ADT^A01^ADT_A01|HIS20240301-7|P|2.5\r"
    "EVN|A01|20240301083000\rPID|1||P1^^^H53^MR||ZHANG^SAN||19801301|X\rPV1|1|I\r"
)
TODAY = dt.date(2025, 3, 1)


def result(source: str = "his/adt-1.hl7") -> dict:
    return validate(MSG.encode()).as_dict() | {"source": source, "index": 0}


def write(tmp_path, text: str):
    path = tmp_path / "waivers.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def codes(msg: dict, *, waived: bool | None = None) -> list[tuple[str, str]]:
    return [
        (f["code"], f["location"])
        for f in msg["findings"]
        if waived is None or bool(f.get("waived")) == waived
    ]


def test_the_message_is_invalid_without_a_waiver():
    msg = result()
    assert not msg["valid"] and ("HL7-DATATYPE-DTM", "3:PID-7.1") in codes(msg)


def test_a_waiver_makes_the_known_deviation_pass_and_keeps_it_visible_with_its_reason(tmp_path):
    path = write(
        tmp_path,
        "waivers:\n"
        "  - code: HL7-DATATYPE-DTM\n"
        "    location: PID-7\n"
        "    message_type: ADT\n"
        "    reason: 出生日期由旧系统迁移，月份为13 (accepted until the HIS upgrade)\n"
        "    expires: 2025-06-30\n",
    )
    ws = waivers.load([path], today=TODAY)
    msg = ws.apply(result())
    assert msg["valid"]
    (f,) = [f for f in msg["findings"] if f.get("waived")]
    assert (f["code"], f["severity"], f["location"]) == ("HL7-DATATYPE-DTM", "error", "3:PID-7.1")
    assert f["waived"] == {
        "reason": "出生日期由旧系统迁移，月份为13 (accepted until the HIS upgrade)",
        "by": "waivers.yaml:2",
        "expires": "2025-06-30",
    }
    assert ws.report()[0]["used"] == 1 and ws.report()[0]["expired"] is False


@pytest.mark.parametrize(
    ("selector", "applies"),
    [
        ("location: PID-7.1", True),
        ("location: PID", True),
        ("location: PID-8", False),
        ("location: PV1-7", False),
        ("message_type: ADT^A01", True),
        ("message_type: ADT^A08", False),
        ("message_type: ORU", False),
        ("control_id: 'HIS2024*'", True),
        ("control_id: 'LIS*'", False),
        ("source: 'his/*'", True),
        ("source: 'lis/*'", False),
    ],
)
def test_location_message_type_and_message_selectors(tmp_path, selector, applies):
    path = write(tmp_path, f"waivers:\n  - code: HL7-DATATYPE-DTM\n    {selector}\n    reason: known\n")
    msg = waivers.load([path], today=TODAY).apply(result())
    assert msg["valid"] is applies
    assert bool(codes(msg, waived=True)) is applies


def test_a_code_glob_waives_every_matching_code(tmp_path):
    path = write(tmp_path, "waivers:\n  - code: HL7-DATATYPE-*\n    reason: the old HIS\n")
    msg = waivers.load([path], today=TODAY).apply(result())
    assert codes(msg, waived=True) == [("HL7-DATATYPE-DTM", "3:PID-7.1")]


def test_an_expired_waiver_waives_nothing_and_is_itself_a_finding(tmp_path):
    path = write(
        tmp_path,
        "waivers:\n  - code: HL7-DATATYPE-DTM\n    reason: until the upgrade\n    expires: 2025-02-28\n",
    )
    ws = waivers.load([path], today=TODAY)
    msg = ws.apply(result())
    assert not msg["valid"] and not codes(msg, waived=True)
    (exp,) = [f for f in msg["findings"] if f["code"] == "WAIVER-EXPIRED"]
    assert exp["severity"] == "warning"
    assert "waivers.yaml:2" in exp["message"] and "expired on 2025-02-28" in exp["message"]
    assert "3:PID-7.1" in exp["message"] and "until the upgrade" in exp["message"]
    assert ws.report()[0]["expired"] is True
    # the waiver still holds on its last day
    same_day = waivers.load([path], today=dt.date(2025, 2, 28)).apply(result())
    assert same_day["valid"]


def test_applying_twice_changes_nothing(tmp_path):
    path = write(tmp_path, "waivers:\n  - code: HL7-DATATYPE-DTM\n    reason: r\n    expires: 2020-01-01\n")
    ws = waivers.load([path], today=TODAY)
    once = ws.apply(result())
    n = len(once["findings"])
    assert len(ws.apply(once)["findings"]) == n


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("waivers:\n  - code: HL7-DATATYPE-DTM\n", r"waivers\[1\] \(line 2\)\.reason: required"),
        ("waivers:\n  - code: HL7-DATATYPE-DTM\n    reason: '  '\n", r"\.reason: required"),
        ("waivers:\n  - reason: r\n", r"\.code: required"),
        ("waivers:\n  - code: HL7-NO-SUCH\n    reason: r\n", r"'HL7-NO-SUCH': matches no finding code"),
        ("waivers:\n  - code: HL7-TABLE-VALUE\n    reason: r\n    expires: soon\n", r"expires 'soon'"),
        ("waivers:\n  - code: HL7-TABLE-VALUE\n    reason: r\n    location: PID8\n", r"location 'PID8'"),
        ("waivers:\n  - code: HL7-TABLE-VALUE\n    reason: r\n    why: x\n", r"unknown key\(s\) why"),
        ("waivers: HL7-TABLE-VALUE\n", r"a list under 'waivers:'"),
        ("waivers:\n  - [\n", r"line \d+ column \d+: not valid YAML"),
    ],
)
def test_bad_waiver_files_say_what_and_where(tmp_path, text, error):
    path = write(tmp_path, text)
    with pytest.raises(waivers.WaiverError, match=error) as exc:
        waivers.load([path], today=TODAY)
    assert "waivers.yaml" in str(exc.value)


def test_a_missing_waiver_file(tmp_path):
    with pytest.raises(waivers.WaiverError, match="cannot read waiver file"):
        waivers.load([tmp_path / "none.yaml"])
