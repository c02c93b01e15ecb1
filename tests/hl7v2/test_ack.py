"""ACK building: every code, both modes, ERR layouts by version, delimiters and charsets kept."""

from __future__ import annotations

import re

import hl7
import pytest

from harness.hl7v2.ack import CODES, AckPlan, build_ack, plan, reject_unparseable
from harness.hl7v2.charset import CharsetError
from harness.hl7v2.message import HL7ParseError, Message

MSG = (
    b"MSH|^~\\&|HIS|H5301|HC|HOSP|20260101083000||ADT^A01^ADT_A01|MSG00001|P|2.5.1|||AL|NE||"
    b"UNICODE UTF-8\rEVN|A01|20260101083000\rPID|1||5301^^^H5301^MR||Zhang^San\r"
)


def _ack(code: str, message: bytes = MSG, **kw) -> Message:
    raw = build_ack(message, code, **kw)
    assert raw.endswith(b"\r") and b"\n" not in raw
    return Message.parse(raw)


@pytest.mark.parametrize("code", CODES)
def test_every_code(code: str) -> None:
    a = _ack(code, text="something went wrong" if code[1] != "A" else None)
    assert a.get("MSA-1") == code
    assert a.get("MSA-2") == "MSG00001"
    assert [a.get(f"MSH-{n}") for n in (3, 4, 5, 6)] == ["HC", "HOSP", "HIS", "H5301"]
    assert a.get("MSH-9") == "ACK^A01^ACK"
    assert a.get("MSH-11") == "P"
    assert a.get("MSH-12") == "2.5.1"
    assert a.get("MSH-18") == "UNICODE UTF-8"
    assert a.get("MSH-10") and a.get("MSH-10") != "MSG00001" and len(a.get("MSH-10")) <= 20
    assert re.fullmatch(r"\d{14}[+-]\d{4}", a.get("MSH-7"))
    if code in ("AE", "AR", "CE", "CR"):
        assert a.segment_ids == ["MSH", "MSA", "ERR"]
        assert a.get("ERR-3.1") == "207"
        assert a.get("ERR-4") == "E"
        assert a.get("ERR-8") == "something went wrong"
    else:
        assert a.segment_ids == ["MSH", "MSA"]


def test_control_ids_are_fresh() -> None:
    ids = {_ack("AA").get("MSH-10") for _ in range(200)}
    assert len(ids) == 200


def test_python_hl7_reads_our_ack() -> None:
    parsed = hl7.parse(build_ack(MSG, "AE", text="bad").decode())
    assert str(parsed.segment("MSA")[1]) == "AE"
    assert str(parsed.segment("MSA")[2]) == "MSG00001"


def test_err_layout_v25_with_location() -> None:
    a = _ack("AE", text="name missing", error_location="PID-5[1].1", error_code="101")
    assert a.get_raw("ERR-2") == "PID^1^5^1^1"
    assert a.get("ERR-3") == "101^Required field missing^HL70357"
    assert a.get("ERR-1") == ""
    assert a.get("MSA-3") is None


def test_err_layout_v23() -> None:
    old = MSG.replace(b"|2.5.1|", b"|2.3|").replace(b"^ADT_A01", b"")
    a = _ack("AR", old, text="rejected: bad PID", error_location="PID[1]-3")
    assert a.get("MSA-3") == "rejected: bad PID"
    assert a.get_raw("ERR-1") == "PID^1^3^207&Application internal error&HL70357"
    assert a.get("ERR-1.4.1") == "207"
    assert a.get("MSH-9") == "ACK^A01^ACK"


def test_error_location_must_be_a_path() -> None:
    with pytest.raises(ValueError, match="bad HL7 path"):
        build_ack(MSG, "AE", error_location="somewhere")


def test_text_is_escaped() -> None:
    a = _ack("AE", text="a|b^c~d\\e&f")
    assert a.get("ERR-8") == "a|b^c~d\\e&f"
    assert a.get_raw("ERR-8") == "a\\F\\b\\S\\c\\R\\d\\E\\e\\T\\f"


def test_message_delimiters_are_used() -> None:
    msg = b"MSH#*@!%$#APP#FAC#R#RF#2026##ORU*R01*ORU_R01#ID9#P#2.7\rPID#1\r"
    raw = build_ack(msg, "AE", text="x#y")
    assert raw.startswith(b"MSH#*@!%$#R#RF#APP#FAC#")
    a = Message.parse(raw)
    assert a.get("MSH-9") == "ACK*R01*ACK"
    assert a.get("MSA-2") == "ID9"
    assert a.get_raw("ERR-8") == "x!F!y"


def test_ack_without_trigger() -> None:
    a = _ack("AA", MSG.replace(b"ADT^A01^ADT_A01", b"QRY"))
    assert a.get("MSH-9") == "ACK"


def test_encoded_in_the_message_charset() -> None:
    gbk = (
        "MSH|^~\\&|HIS|云南医院|HC|HOSP|20260101||ADT^A04|甲1|P|2.4||||||GBK\rPID|1||1||亅乗\r"
    ).encode("gb18030")
    raw = build_ack(gbk, "AE", text="姓名有误 亅")
    text = raw.decode("gb18030")
    assert "MSH|^~\\&|HC|HOSP|HIS|云南医院|" in text
    assert "\rMSA|AE|甲1|姓名有误 亅\r" in text  # v2.4: the text goes in MSA-3
    a = Message.parse(raw)
    assert a.get("MSH-18") == "GBK" and a.codec == "gb18030"


def test_explicit_charset_for_the_ack() -> None:
    msg = "MSH|^~\\&|HIS|云南|HC|HOSP|20260101||ADT^A04|1|P|2.4\r".encode("gbk")
    raw = build_ack(msg, "AA", charset="GBK")
    assert "|云南|" in raw.decode("gb18030")


def test_undecodable_header_bytes_travel_back_unchanged() -> None:
    msg = b"MSH|^~\\&|HIS\xff\xfe|F|HC|HOSP|20260101||ADT^A01|1|P|2.5\r"
    raw = build_ack(msg, "AE", text="bad bytes")
    assert b"|HC|HOSP|HIS\xff\xfe|F|" in raw


def test_text_outside_the_charset_is_an_error() -> None:
    msg = b"MSH|^~\\&|HIS|F|HC|HOSP|20260101||ADT^A01|1|P|2.5||||||ASCII\r"
    with pytest.raises(CharsetError, match="ascii"):
        build_ack(msg, "AE", text="张三")


def test_bad_code() -> None:
    with pytest.raises(ValueError, match="ACK code"):
        build_ack(MSG, "OK")
    assert _ack("aa").get("MSA-1") == "AA"


@pytest.mark.parametrize(
    ("payload", "needle"),
    [(b"garbage", "no MSH"), (b"MSH", "MSH-1"), (b"MSH|^~|", "too short"), (b"MSH||A", "missing")],
)
def test_unusable_msh_raises_parse_error(payload: bytes, needle: str) -> None:
    with pytest.raises(HL7ParseError, match=needle):
        build_ack(payload, "AA")


def test_reject_unparseable() -> None:
    raw = reject_unparseable(b"\x00garbage", "no MSH segment at start of message")
    a = Message.parse(raw)
    assert a.get("MSA-1") == "AR"
    assert a.get("MSA-2") == ""
    assert a.get("ERR-8") == "no MSH segment at start of message"
    assert a.get("ERR-3.1") == "207"
    assert a.get("MSH-9") == "ACK"
    assert a.get("MSH-18") is None
    assert raw.isascii()


def test_reject_unparseable_non_ascii_reason() -> None:
    raw = reject_unparseable(b"x", "无法解析 | bad\rline")
    a = Message.parse(raw)
    assert a.get("MSH-18") == "UNICODE UTF-8"
    assert a.get("ERR-8") == "无法解析 | bad line"


# -- which ACKs are owed --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("msh15", "msh16", "outcome", "expected"),
    [
        # original mode: both empty
        ("", "", "ok", AckPlan(None, "AA", False)),
        (None, None, "error", AckPlan(None, "AE", False)),
        ("", "", "reject", AckPlan(None, "AR", False)),
        ("", "", "commit_error", AckPlan(None, "AE", False)),
        ("", "", "commit_reject", AckPlan(None, "AR", False)),
        # enhanced mode
        ("AL", "AL", "ok", AckPlan("CA", "AA", True)),
        ("AL", "NE", "ok", AckPlan("CA", None, True)),
        ("NE", "AL", "ok", AckPlan(None, "AA", True)),
        ("AL", "AL", "error", AckPlan("CA", "AE", True)),
        ("AL", "AL", "reject", AckPlan("CA", "AR", True)),
        ("AL", "AL", "commit_error", AckPlan("CE", None, True)),
        ("AL", "AL", "commit_reject", AckPlan("CR", None, True)),
        ("ER", "ER", "ok", AckPlan(None, None, True)),
        ("ER", "ER", "error", AckPlan(None, "AE", True)),
        ("ER", "AL", "commit_reject", AckPlan("CR", None, True)),
        ("SU", "SU", "ok", AckPlan("CA", "AA", True)),
        ("SU", "SU", "error", AckPlan("CA", None, True)),
        ("SU", "AL", "commit_error", AckPlan(None, None, True)),
        ("NE", "NE", "ok", AckPlan(None, None, True)),
        ("AL", "", "ok", AckPlan("CA", "AA", True)),  # empty in enhanced mode counts as AL
        ("", "NE", "ok", AckPlan("CA", None, True)),
    ],
)
def test_plan(msh15, msh16, outcome, expected) -> None:
    assert plan(msh15, msh16, outcome) == expected


def test_plan_bad_outcome() -> None:
    with pytest.raises(ValueError, match="outcome"):
        plan("AL", "AL", "maybe")


def test_enhanced_mode_end_to_end() -> None:
    """A message asking for accept ACKs always and application ACKs on error gets a CA only."""
    m = Message.parse(MSG)
    p = plan(m.get("MSH-15"), m.get("MSH-16"), "ok")
    assert p == AckPlan("CA", None, True)
    a = _ack(p.accept)
    assert a.get("MSA-1") == "CA" and a.get("MSA-2") == "MSG00001"
