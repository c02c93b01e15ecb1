"""Interface profiles (YAML with extends, value sets; HL7 XML conformance profiles) on top of the standard."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.hl7v2.validation import profile as profiles
from harness.hl7v2.validation.validator import Validator

ROOT = Path(__file__).resolve().parents[3]
SPECS = ROOT / "specs" / "hl7v2"
XML = ROOT / "fixtures" / "hl7v2" / "validation" / "adt_a01_conformance_profile.xml"

ADT = (
    "MSH|^~\\&|HIS|H53010001|HC|H53010001|20240301083000||ADT^A01^ADT_A01|MSG0001|P|2.5|||AL|NE||GBK\r"
    "EVN|A01|20240301083000\r"
    "PID|1||530102198001011234^^^H53010001^ID||张^三||19800101|M||||||||||||||07^彝族\r"
    "PV1|1|I|0101^01^01||||D001^李^医生|||0101|||||||||ZY0001|||||||||||||||||||||||||20240301083000\r"
)
ORU = (
    "MSH|^~\\&|LIS|H53010001|HIS|H53010001|20240301090000||ORU^R01^ORU_R01|LAB1|P|2.5.1\r"
    "PID|1||P000123^^^H53^MR||王^五||19700203|F\r"
    "OBR|1|ORD1|2024030100012|GLU^葡萄糖^L|||20240301080000|||||||||||||||||F\r"
    "OBX|1|NM|GLU^葡萄糖^L||5.4|mmol/L|3.9-6.1|N|||F\r"
)


def run(profile, msg: str, charset="gb18030"):
    return Validator(profile=profile).validate(msg.encode(charset))


def pcodes(result):
    return sorted(
        (f.code, str(f.location))
        for f in result.findings
        if f.code.startswith("PROFILE-") or f.code.startswith("HL7-STRUCT-Z")
    )


def test_example_profiles_load_and_accept_their_messages():
    adt = profiles.load(SPECS / "yunnan-his-adt.yaml")
    assert adt.name == "yunnan-his-adt" and adt.version == "2.5"
    assert "MSH-3" in {r.path for r in adt.common.fields["MSH"]}, "inherited from cn-hospital-base"
    r = run(adt, ADT)
    assert r.valid, [str(f) for f in r.findings if f.severity == "error"]
    lis = profiles.load(SPECS / "lis-oru.yaml")
    r = run(lis, ORU, "utf-8")
    assert r.valid, [str(f) for f in r.findings if f.severity == "error"]


def test_gb3304_value_set_is_the_real_list():
    adt = profiles.load(SPECS / "yunnan-his-adt.yaml")
    rule = next(r for r in adt.common.fields["PID"] if r.path == "PID-22.1")
    numeric = frozenset(f"{n:02d}" for n in range(1, 57))
    assert numeric <= rule.values and {"HA", "YI", "97", "98"} <= rule.values  # GB 3304 numeric or letter
    assert len(rule.values) == 56 * 2 + 2
    r = run(adt, ADT.replace("07^彝族", "57^其他"))
    assert ("PROFILE-VALUE-SET", "3:PID-22.1") in pcodes(r)


def test_profile_constraints_report_every_violation():
    adt = profiles.load(SPECS / "yunnan-his-adt.yaml")
    msg = (
        ADT.replace("|M|", "|X|")
        .replace("ZY0001", "zy-1")
        .replace("||GBK\r", "||UNICODE UTF-8\r")
        .replace("PV1|1|I|0101^", "PV1|1|I|9999^")
        + "ZXX|1\r"
    )
    r = run(adt, msg, "utf-8")
    got = pcodes(r)
    assert ("PROFILE-VALUE-SET", "3:PID-8") in got
    assert ("PROFILE-PATTERN", "4:PV1-19") in got
    assert ("PROFILE-VALUE-SET", "4:PV1-3.1") in got
    assert ("PROFILE-CHARSET", "1:MSH-18") in got
    assert ("HL7-STRUCT-Z-FORBIDDEN", "5:ZXX") in got
    assert not r.valid


def test_message_type_version_and_per_message_rules():
    adt = profiles.load(SPECS / "yunnan-his-adt.yaml")
    a05 = ADT.replace("ADT^A01^ADT_A01", "ADT^A05^ADT_A05")
    assert ("PROFILE-MESSAGE-TYPE", "1:MSH-9") in pcodes(run(adt, a05))
    no_admit_time = ADT.replace("|||20240301083000\r", "|||\r")
    assert ("PROFILE-FIELD-REQUIRED", "4:PV1-44") in pcodes(run(adt, no_admit_time))
    # the same visit without PV1-44 is fine as an update (A08)
    a08 = no_admit_time.replace("ADT^A01^ADT_A01", "ADT^A08^ADT_A01")
    assert ("PROFILE-FIELD-REQUIRED", "4:PV1-44") not in pcodes(run(adt, a08))
    v231 = ADT.replace("|P|2.5|", "|P|2.3.1|")
    assert ("PROFILE-VERSION", "1:MSH-12") in pcodes(run(adt, v231))


def test_extends_and_errors(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text("name: b\nfields:\n  PID-8: {values: [M, F]}\n  PID-3: {usage: R}\n", encoding="utf-8")
    child = tmp_path / "child.yaml"
    child.write_text("name: c\nextends: base.yaml\nfields:\n  PID-8: {values: [M, F, U]}\n", encoding="utf-8")
    prof = profiles.load(child)
    rules = {r.path: r for r in prof.common.fields["PID"]}
    assert rules["PID-8"].values == frozenset({"M", "F", "U"}) and rules["PID-3"].usage == "R"
    for text, needle in [
        ("name: x\nfields:\n  PID8: {usage: R}\n", "PID-3"),
        ("name: x\nfields:\n  PID-8: {usage: Q}\n", "usage"),
        ("name: x\nfields:\n  PID-8: {value_set: nope}\n", "nope"),
        ("name: x\nbogus: 1\n", "bogus"),
        ("name: x\nextends: missing.yaml\n", "missing.yaml"),
        ("name: [\n", "YAML"),
    ]:
        bad = tmp_path / "bad.yaml"
        bad.write_text(text, encoding="utf-8")
        with pytest.raises(profiles.ProfileError) as exc:
            profiles.load(bad)
        assert needle in str(exc.value) and "bad.yaml" in str(exc.value)
    loop = tmp_path / "loop.yaml"
    loop.write_text("name: l\nextends: loop.yaml\n", encoding="utf-8")
    with pytest.raises(profiles.ProfileError, match="cycle"):
        profiles.load(loop)


def test_xml_conformance_profile():
    prof = profiles.load(XML)
    assert prof.version == "2.5" and prof.message_types == frozenset({"ADT^A01"})
    ok = (
        "MSH|^~\\&|HIS|H53|HC|H53|20240301083000||ADT^A01^ADT_A01|M1|P|2.5\r"
        "EVN|A01|20240301083000\rPID|1||P1^^^H53^MR||ZHANG^SAN||19800101|M\rPV1|1|I\r"
    )
    r = Validator(profile=prof).validate(ok.encode())
    assert r.valid, [str(f) for f in r.findings]
    bad = ok.replace("PID|1||P1^^^H53^MR|", "PID|1|X9||") + "NK1|1|LI^SI\rIN2|1\r"
    r = Validator(profile=prof).validate(bad.encode())
    got = {(f.code, str(f.location)) for f in r.findings if f.severity == "error"}
    assert ("PROFILE-FIELD-FORBIDDEN", "3:PID-2") in got
    assert ("PROFILE-FIELD-REQUIRED", "3:PID-3") in got
    # the profile's structure replaces the standard's: NK1 is not allowed, IN2 needs IN1 first
    assert ("HL7-STRUCT-UNEXPECTED-SEGMENT", "5:NK1") in got
    assert any(code == "HL7-STRUCT-MISSING-SEGMENT" for code, _ in got)
    long_id = ok.replace("P1^^^H53^MR", "P1234567890123456^^^H53^MR")
    got = {(f.code, str(f.location)) for f in Validator(profile=prof).validate(long_id.encode()).findings}
    assert ("PROFILE-LENGTH", "3:PID-3.1") in got


def test_xml_errors(tmp_path):
    bad = tmp_path / "p.xml"
    bad.write_text("<HL7v2xConformanceProfile><oops></HL7v2xConformanceProfile>", encoding="utf-8")
    with pytest.raises(profiles.ProfileError, match="well-formed"):
        profiles.load(bad)
    bad.write_text("<Other/>", encoding="utf-8")
    with pytest.raises(profiles.ProfileError, match="HL7v2xConformanceProfile"):
        profiles.load(bad)


def test_field_level_value_set_binds_the_code_component(tmp_path):
    prof = tmp_path / "p.yaml"
    prof.write_text(
        "name: p\nfields:\n  PV1-10: {values: ['0101']}\n  PID-8: {values: [M]}\n", encoding="utf-8"
    )
    p = profiles.load(prof)
    msg = ADT.replace("|||0101|||", "|||0101^心血管内科|||").replace("|M|", "|M^男|")
    assert pcodes(run(p, msg)) == []
    assert ("PROFILE-VALUE-SET", "4:PV1-10") in pcodes(
        run(p, msg.replace("0101^心血管内科", "0102^呼吸内科"))
    )
