"""The lossless message model: paths, escaping, set/extend, byte-identical re-encode, clear errors."""

from __future__ import annotations

import pytest

from harness.hl7v2.message import HL7ParseError, Message, Path, parse_path

MSG = (
    b"MSH|^~\\&|HIS|H5301|HC|HOSP|20260101083000||ADT^A01^ADT_A01|MSG00001|P|2.5.1\r"
    b"PID|1||5301^^^H5301^MR~53011^^^YB&1.2&ISO^PI||Zhang^San^^^^^L||19800101|M\r"
    b"OBX|1|ST|A||first\\F\\value\rOBX|2|ST|B||second\r"
)


def test_paths() -> None:
    m = Message.parse(MSG)
    assert m.get("MSH-1") == "|"
    assert m.get("MSH-2") == "^~\\&"
    assert m.get("MSH-3") == "HIS"
    assert m.get("MSH-9") == "ADT^A01^ADT_A01"
    assert m.get("MSH-9.2") == "A01"
    assert m.get("PID-5.1") == "Zhang"
    assert m.get("PID-3") == "5301^^^H5301^MR"
    assert m.get("PID-3[2].1") == "53011"
    assert m.get("PID-3[2].4.2") == "1.2"
    assert m.get("OBX[2]-5") == "second"
    assert m.get("OBX-5") == "first|value"
    assert m.get_raw("OBX-5") == "first\\F\\value"
    assert m.get("OBX[3]-5") is None
    assert m.get("PID-30") is None
    assert m.get("PID-3[3]") is None
    assert m.get("PID-5.9") is None
    assert m.get("ZZZ-1") is None
    assert m.get("PID-4") == ""


def test_parse_path() -> None:
    assert parse_path("OBX[2]-5") == Path("OBX", 2, 5)
    assert parse_path("PID-3[2].1.2") == Path("PID", 1, 3, 2, 1, 2)
    assert parse_path("pid-5-1") == Path("PID", 1, 5, None, 1)
    assert str(parse_path("OBX[2]-5[3].1.2")) == "OBX[2]-5[3].1.2"
    for bad in ("", "PID5", "PID-0", "PI-5", "PID-5..1"):
        with pytest.raises(ValueError, match="bad HL7 path"):
            parse_path(bad)


def test_untouched_is_identical() -> None:
    m = Message.parse(MSG)
    m.get("PID-5.1")
    assert m.encode() is MSG or m.encode() == MSG
    assert not m.touched


def test_set_touches_only_its_segment() -> None:
    m = Message.parse(MSG)
    m.set("PID-5.2", "Si|Li")
    assert m.get("PID-5.2") == "Si|Li"
    assert m.encode() == MSG.replace(b"Zhang^San", b"Zhang^Si\\F\\Li")


def test_errors_say_what_and_where() -> None:
    with pytest.raises(HL7ParseError, match="no MSH segment") as info:
        Message.parse(b"PID|1\r")
    assert info.value.offset == 0
    with pytest.raises(HL7ParseError, match="NUL byte") as info:
        Message.parse(MSG[:20] + b"\x00" + MSG[20:])
    assert info.value.offset == 20
