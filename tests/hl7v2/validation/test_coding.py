"""Table 0396 (coding systems): every version's names, the table's patterns, systems a profile declares."""

from __future__ import annotations

import pytest

from harness.hl7v2.validation import coding
from harness.hl7v2.validation.profile import ProfileError, load
from harness.hl7v2.validation.validator import Validator, validate


def oru(system: str, version: str = "2.5.1") -> bytes:
    return (
        f"MSH|^~\\&|LIS|H|HIS|H|20240301083000||ORU^R01^ORU_R01|C1|P|{version}\r"
        "PID|1||P1^^^H^MR||ZHANG^SAN||19800101|M\rOBR|1|O1|F1|GLU^Glucose^L|||20240301083000\r"
        f"OBX|1|CWE|GLU^Glucose^LN||M^男^{system}||||||F\r"
    ).encode()


def table_findings(result) -> list[tuple[str, str]]:
    return [(f.severity, f.actual) for f in result.findings if f.code == "HL7-TABLE-VALUE"]


@pytest.mark.parametrize(
    "system",
    [
        "SCT",
        "LN",
        "I10",
        "UCUM",
        "HL70136",
        "HL70001",
        "ISO3166",
        "IBT0001",
        "99LOCAL",
        "L",
        "2.16.840.1.113883.6.1",
    ],
)
def test_well_known_names_and_the_tables_patterns_are_accepted(system):
    assert coding.accepted(system)
    assert table_findings(validate(oru(system))) == []


def test_names_registered_in_a_later_version_are_known_in_an_earlier_one():
    assert "SCT" in coding.known() and "PHINQUESTION" in coding.known()
    assert table_findings(validate(oru("PHINQUESTION", "2.5.1"))) == []


def test_an_unknown_name_that_looks_like_an_identifier_is_info_with_a_hint():
    r = validate(oru("CDCINDUSTRY2010"))
    (f,) = [f for f in r.findings if f.code == "HL7-TABLE-VALUE"]
    assert f.severity == "info" and "coding_systems" in f.message and r.valid


@pytest.mark.parametrize(("system", "hint"), [("RxNorm", "'RXNORM'"), ("Georgia ", "does not look like")])
def test_a_name_that_is_no_identifier_stays_a_warning(system, hint):
    (f,) = [f for f in validate(oru(system)).findings if f.code == "HL7-TABLE-VALUE"]
    assert f.severity == "warning" and hint in f.message


def test_a_profile_declares_chinese_coding_systems(tmp_path):
    prof = tmp_path / "p.yaml"
    prof.write_text(
        "name: cn\ncoding_systems:\n  GBT2261.1: GB/T 2261.1-2003 人的性别代码\n  GB3304: GB/T 3304 民族\n",
        encoding="utf-8",
    )
    profile = load(prof)
    assert profile.coding_systems == {"GBT2261.1", "GB3304"}
    assert profile.coding_system_labels["GB3304"] == "GB/T 3304 民族"
    v = Validator(profile=profile)
    assert table_findings(v.validate(oru("GBT2261.1"))) == []
    assert table_findings(Validator().validate(oru("GBT2261.1"))) == [("info", "GBT2261.1")]
    # the value accepted through the profile is not remembered for validators without it
    assert table_findings(Validator().validate(oru("GBT2261.1"))) == [("info", "GBT2261.1")]


def test_a_bad_coding_systems_key_names_the_file(tmp_path):
    prof = tmp_path / "p.yaml"
    prof.write_text("coding_systems: GB3304\n", encoding="utf-8")
    with pytest.raises(ProfileError, match="p.yaml: coding_systems must map"):
        load(prof)
