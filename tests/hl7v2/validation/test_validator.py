"""The validator over whole messages: every finding with code, location, expected and actual."""

from __future__ import annotations

import pytest

from harness.hl7v2.reference import UnsupportedVersion
from harness.hl7v2.validation.validator import Validator, validate

ADT = (
    "MSH|^~\\&|HIS|H53010001|HC|H53010001|20240301083000||ADT^A01^ADT_A01|MSG0001|P|2.5|||AL|NE\r"
    "EVN|A01|20240301083000\r"
    "PID|1||P000123^^^H53010001^MR||张^三||19800101|M|||昆明市五华区^^昆明^云南^650000^CHN\r"
    "PV1|1|I|0301^0101^01^H53010001||||D001^李^医生|||||||||||V0001\r"
)
ORU = (
    "MSH|^~\\&|LIS|H53|HIS|H53|20240301090000||ORU^R01^ORU_R01|LAB0001|P|2.5.1\r"
    "PID|1||P000123^^^H53^MR||王^五||19700203|F\r"
    "OBR|1|ORD1|FIL1|GLU^Glucose^L|||20240301080000\r"
    "OBX|1|NM|GLU^Glucose^L||5.4|mmol/L|3.9-6.1|N|||F\r"
    "OBX|2|ST|NOTE^Note^L||fasting||||||F\r"
)


def codes(result) -> list[str]:
    return [f.code for f in result.findings if f.severity == "error"]


def test_valid_messages_have_no_errors():
    for msg in (ADT, ORU):
        r = validate(msg.encode())
        assert r.valid, [str(f) for f in r.findings]
    r = validate(ADT.encode())
    assert (r.message_type, r.structure, r.version, r.control_id) == ("ADT^A01", "ADT_A01", "2.5", "MSG0001")


def test_missing_required_segment_and_field():
    msg = ADT.replace("EVN|A01|20240301083000\r", "").replace("PID|1||P000123^^^H53010001^MR|", "PID|1|||")
    r = validate(msg.encode())
    assert codes(r) == ["HL7-STRUCT-MISSING-SEGMENT", "HL7-FIELD-REQUIRED"]
    missing, required = [f for f in r.findings if f.severity == "error"]
    assert missing.location.segment == "EVN" and missing.expected == "EVN"
    assert str(required.location) == "2:PID-3"


def test_datatype_errors_are_located_to_the_component():
    msg = ADT.replace("|19800101|M|", "|19801301|M|").replace("20240301083000\r", "2024030108300X\r", 1)
    r = validate(msg.encode())
    found = {(f.code, str(f.location), f.actual) for f in r.findings if f.severity == "error"}
    assert ("HL7-DATATYPE-DTM", "3:PID-7.1", "19801301") in found
    assert ("HL7-DATATYPE-DTM", "2:EVN-2.1", "2024030108300X") in found


def test_numbers_sequence_ids_and_obx5_by_obx2():
    msg = ORU.replace("OBX|1|NM|GLU^Glucose^L||5.4|", "OBX|x|NM|GLU^Glucose^L||five|")
    r = validate(msg.encode())
    found = {(f.code, str(f.location)) for f in r.findings if f.severity == "error"}
    assert found == {("HL7-DATATYPE-SI", "4:OBX-1"), ("HL7-DATATYPE-NM", "4:OBX-5")}


def test_table_values_are_warnings_and_repetition_limits_errors():
    msg = ADT.replace("|PV1|1|I|", "|PV1|1|I|").replace("PV1|1|I|", "PV1|1|Q|")
    msg = msg.replace("|M|||", "|M~F|||")
    r = validate(msg.encode())
    assert ("HL7-FIELD-REPETITION", "3:PID-8") in {(f.code, str(f.location)) for f in r.findings}
    table = [f for f in r.findings if f.code == "HL7-TABLE-VALUE" and f.location.segment == "PV1"]
    assert table and table[0].severity in ("warning", "info") and table[0].actual == "Q"


def test_lengths_and_escapes_are_warnings():
    msg = ADT.replace("V0001", "V" * 250).replace("云南", "云\\Q\\南")
    r = validate(msg.encode())
    got = {f.code: f for f in r.findings}
    assert got["HL7-LENGTH-EXCEEDED"].severity == "warning"
    assert got["HL7-ESCAPE-INVALID"].severity == "warning"
    assert r.valid


def test_undefined_fields_and_components_warn():
    msg = ADT.replace("PV1|1|I|", "PV1|1|I^X^Y|") + "EVN|A01|20240301083000" + "|x" * 12 + "\r"
    r = validate(msg.encode())
    assert "HL7-STRUCT-TOO-MANY" in codes(r)
    assert {"HL7-FIELD-UNDEFINED", "HL7-COMPONENT-UNDEFINED"} <= {f.code for f in r.findings}


def test_z_segments_allowed_by_default_with_info():
    r = validate((ADT + "ZPI|1|extra\r").encode())
    assert r.valid
    assert [f.code for f in r.findings if f.location.segment == "ZPI"] == ["HL7-STRUCT-Z-SEGMENT"]


def test_event_sharing_a_structure_and_structure_mismatch():
    a04 = ADT.replace("ADT^A01^ADT_A01", "ADT^A04")
    r = validate(a04.encode())
    assert r.structure == "ADT_A01" and r.valid
    bad = ADT.replace("ADT^A01^ADT_A01", "ADT^A04^ADT_A05")
    assert "HL7-MSH-STRUCTURE-MISMATCH" in {f.code for f in validate(bad.encode()).findings}
    unknown = ADT.replace("ADT^A01^ADT_A01", "ADT^Z99^XYZ_A99")
    assert "HL7-MSH-STRUCTURE-UNKNOWN" in codes(validate(unknown.encode()))


def test_version_problems():
    r = validate(ADT.replace("|P|2.5|", "|P|2.9|").encode())
    assert codes(r) == ["HL7-MSH-VERSION-UNSUPPORTED"]
    assert "2.8.2" in r.findings[0].message
    r = validate(ADT.replace("|P|2.5|", "|P||").encode())
    assert codes(r) == ["HL7-MSH-VERSION-MISSING"]
    # an explicit version overrides MSH-12
    assert Validator(version="2.5").validate(ADT.replace("|P|2.5|", "|P|2.9|").encode()).valid
    with pytest.raises(UnsupportedVersion):
        Validator(version="3.0")


def test_ack_consistency():
    ack = "MSH|^~\\&|HC|H|HIS|H|20240301083001||ACK^A01^ACK|A1|P|2.5\rMSA|AA|MSG0001\r"
    assert validate(ack.encode()).valid
    r = validate(ack.replace("MSA|AA|MSG0001", "MSA|OK|").encode())
    assert {"HL7-ACK-CODE", "HL7-ACK-CONTROL-ID"} <= set(codes(r))
    r = validate(ack.replace("MSA|AA|", "MSA|AE|").encode())
    assert [f.code for f in r.findings] == ["HL7-ACK-NO-ERR"] and r.valid


def test_gbk_message_decoded_by_msh18():
    msg = ADT.replace("|AL|NE\r", "|AL|NE||GBK\r").replace("张", "亅")
    r = validate(msg.encode("gb18030"))
    assert r.valid, [str(f) for f in r.findings]
    r = validate(msg.replace("|GBK\r", "|UNICODE UTF-8\r").encode("gb18030"))
    assert "HL7-PARSE-CHARSET" in codes(r)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\r\n",
        b"PID|1",
        b"MSH",
        b"MSH|",
        b"MSH|^~\\&",
        b"MSH|aaaa|",
        b"MSH|^^^^|x\rPID",
        b"\xff\xfe\x00",
        b"MSH|^~\\&|||||||ADT^A01|1|P|2.5\rPI|x\r\r\rZZ1\rPID" + b"|" * 500,
    ],
)
def test_bad_input_gives_findings_not_exceptions(data):
    r = validate(data)
    assert not r.valid
    assert all(f.code != "HL7-INTERNAL" for f in r.findings), [str(f) for f in r.findings]


def test_repeated_values_give_the_same_findings_every_time():
    v = Validator()
    bad = ADT.replace("|19800101|M|", "|19801301|M|")
    first = [str(f) for f in v.validate(ADT.encode()).findings]
    for _ in range(3):
        assert [str(f) for f in v.validate(ADT.encode()).findings] == first
        assert "HL7-DATATYPE-DTM" in {f.code for f in v.validate(bad.encode()).findings}
    # other delimiters: the same text means something else, and is checked afresh
    odd = ADT.replace("^~\\&", "$~\\&").replace("^", "$").replace("MSH|$~", "MSH|$~")
    assert v.validate(odd.encode()).valid
    assert not v.validate(odd.replace("|19800101|M|", "|19801301|M|").encode()).valid


def test_structure_id_outside_table_0354_falls_back_to_the_event():
    r = validate(ADT.replace("ADT^A01^ADT_A01", "ADT^A04^ADT_A04").encode())
    assert r.valid and r.structure == "ADT_A01"
    assert [f.code for f in r.findings if f.code.startswith("HL7-MSH")] == ["HL7-MSH-STRUCTURE-MISMATCH"]


def test_every_supported_version_validates_without_internal_failure():
    from harness.hl7v2.reference import VERSIONS

    for version in VERSIONS:
        r = validate(ADT.replace("|P|2.5|", f"|P|{version}|").encode())
        assert r.structure == "ADT_A01", version
        assert "HL7-INTERNAL" not in {f.code for f in r.findings}, version


def test_long_pathological_message_is_still_fully_reported():
    msg = ADT + "PID|1\r" * 2000
    r = validate(msg.encode())
    assert sum(f.code == "HL7-STRUCT-TOO-MANY" for f in r.findings) == 2000
