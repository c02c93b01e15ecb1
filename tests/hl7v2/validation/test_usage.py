"""Usage from two sources: C kept apart from R; disagreements are HL7-SOURCE-CONFLICT warnings, not errors."""

from __future__ import annotations

import io
import json
import sys
import tarfile
from pathlib import Path

import pytest

from harness.hl7v2 import reference
from harness.hl7v2.validation import usage
from harness.hl7v2.validation.validator import validate

ROOT = Path(__file__).resolve().parents[3]


def msg(version: str, *segments: str) -> bytes:
    head = f"MSH|^~\\&|LIS|H|HIS|H|20240301083000||ORU^R01^ORU_R01|C1|P|{version}\r"
    return (head + "\r".join(segments) + "\r").encode()


PID = "PID|1||P1^^^H^MR||ZHANG^SAN||19800101|M"
OBR = "OBR|1|O1|F1|GLU^Glucose^L|||20240301083000"


def codes_at(result, code: str) -> list[str]:
    return [str(f.location) for f in result.findings if f.code == code]


def test_obx4_is_conditional_in_2_8_and_never_required_without_its_condition():
    el = usage.segment_elements(reference.load("2.8"), "OBX")[3]
    assert el.usage == "C" and el.name == "Observation Sub-ID" and el.condition is None
    assert "hl7apy's 2.8 tables mark OBX-4 required" in el.conflict and "hl7-dictionary 2.7.1" in el.conflict
    r = validate(msg("2.8", PID, OBR, "OBX|1|NM|GLU^Glucose^L||5.2|mmol/L|||||F"))
    assert r.valid, [str(f) for f in r.findings]
    assert codes_at(r, "HL7-SOURCE-CONFLICT") == ["4:OBX-4"]
    assert not codes_at(r, "HL7-FIELD-REQUIRED")


def test_obx4_in_2_3_1_where_both_sources_say_required_follows_the_first_tables_that_know_c():
    el = usage.segment_elements(reference.load("2.3.1"), "OBX")[3]
    assert el.usage == "C" and "2.7 (the first tables that tell C from R)" in el.conflict
    r = validate(msg("2.3.1", PID, OBR, "OBX|1|NM|GLU^Glucose^L||5.2|mmol/L|||||F"))
    assert r.valid and codes_at(r, "HL7-SOURCE-CONFLICT") == ["4:OBX-4"]


def test_a_field_required_in_one_version_only_is_an_outlier_of_the_common_tables():
    el = usage.segment_elements(reference.load("2.3"), "ORC")[6]
    assert el.usage == "O" and "optional in 2.2 and 2.3.1" in el.conflict
    assert usage.segment_elements(reference.load("2.3"), "ORC")[0].usage == "R"  # ORC-1 stays required


def test_a_known_condition_makes_a_conditional_field_required_only_when_it_holds():
    assert usage.segment_elements(reference.load("2.7"), "OBX")[1].condition is not None
    r = validate(msg("2.7", PID, OBR, "OBX|1||GLU^Glucose^L|1|5.2|mmol/L|||||F"))
    req = [f for f in r.findings if f.code == "HL7-FIELD-REQUIRED"]
    assert [str(f.location) for f in req] == ["4:OBX-2"]
    assert "required here because OBX-5 (Observation Value) is valued" in req[0].message
    r = validate(msg("2.7", PID, OBR, "OBX|1||GLU^Glucose^L|1||mmol/L|||||X"))
    assert not codes_at(r, "HL7-FIELD-REQUIRED"), [str(f) for f in r.findings]


def test_required_in_both_sources_stays_an_error_with_the_standards_name():
    r = validate(msg("2.5", "PID|1||||ZHANG^SAN||19800101|M", OBR, "OBX|1|NM|GLU^Glucose^L||5.2||||||F"))
    req = [f for f in r.findings if f.code == "HL7-FIELD-REQUIRED"]
    assert [str(f.location) for f in req] == ["2:PID-3"] and not r.valid
    assert req[0].message == "PID-3 (Patient Identifier List) is required but empty"


def test_a_repetition_one_source_allows_is_a_conflict_not_an_error():
    std = reference.load("2.5.1")
    el = usage.segment_elements(std, "OBX")[1]
    assert el.repeat_conflict and "hl7-dictionary 2.5.1" in el.repeat_conflict
    r = validate(msg("2.5.1", PID, OBR, "OBX|1|NM~ST|GLU^Glucose^L||5.2||||||F"))
    assert "HL7-FIELD-REPETITION" not in {f.code for f in r.findings}
    assert codes_at(r, "HL7-SOURCE-CONFLICT") == ["4:OBX-2"]
    r = validate(msg("2.5.1", PID, OBR, "OBX|1|NM|GLU^Glucose^L||5.2||||||F~C"))
    assert codes_at(r, "HL7-FIELD-REPETITION") == ["4:OBX-11"]  # both sources: OBX-11 does not repeat


def test_withdrawn_and_backward_compatible_elements_keep_their_codes():
    std = reference.load("2.8")
    pid = usage.segment_elements(std, "PID")
    assert pid[1].usage == "W"  # PID-2, withdrawn
    assert {el.usage for el in pid} <= set(usage.USAGES)
    assert usage.segment_elements(reference.load("2.7"), "PID")[27].usage == "B"  # PID-28 Nationality


def test_disagreements_are_listed_per_version():
    found = dict(usage.disagreements(reference.load("2.8")))
    assert "OBX-4" in found and "OBX-2" in found


def test_second_source_covers_2_1_to_2_7_1_and_stands_in_for_2_8():
    assert usage.second_source("2.5")["version"] == "2.5"
    assert usage.second_source("2.8.2")["version"] == "2.7.1"
    prov = usage.second_source("2.5")["provenance"]
    assert prov["package"] == "hl7-dictionary@1.0.1" and prov["license"] == "MIT"
    assert len(prov["tarball_sha256"]) == 64


def _fake_package(tmp_path: Path) -> Path:
    """A tiny package shaped like hl7-dictionary, to run the converter without the network."""
    files = {
        "package/package.json": json.dumps({"name": "hl7-dictionary", "version": "9.9.9", "license": "MIT"}),
        "package/lib/2.5/segments.js": "var segments = "
        + json.dumps(
            {"ZZZ": {"desc": "t", "fields": [{"desc": "A  b", "datatype": "ST", "opt": 3, "rep": 0}]}}
        )
        + ";\n\nmodule.exports = segments;\n",
        "package/lib/2.5/fields.js": "var fields = "
        + json.dumps(
            {"XX": {"desc": "x", "subfields": [{"desc": "C", "datatype": "ID", "opt": 2, "rep": 1}]}}
        )
        + ";\nmodule.exports = fields;\n",
        "package/lib/tables.js": "var tables = "
        + json.dumps({"396": {"desc": "Coding system", "values": {"SCT": "SNOMED CT"}}})
        + ";\nmodule.exports = tables;\n",
    }
    tgz = tmp_path / "hl7-dictionary-9.9.9.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return tgz


def test_the_converter_reads_the_npm_tarball_into_the_shipped_shape(tmp_path):
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import build_hl7_dictionary as tool
    finally:
        sys.path.remove(str(ROOT / "tools"))
    out = tool.convert(_fake_package(tmp_path))
    import gzip

    doc = json.loads(gzip.decompress(out["2.5.json.gz"]))
    assert doc["segments"] == {"ZZZ": [["A b", "ST", "C", -1]]}
    assert doc["datatypes"] == {"XX": [["C", "ID", "R", 1]]}
    assert doc["provenance"]["package"] == "hl7-dictionary@9.9.9"
    assert json.loads(out["coding-systems.json"])["values"] == {"SCT": "SNOMED CT"}
    assert out == tool.convert(_fake_package(tmp_path)), "the same input builds the same bytes"
    bad = tmp_path / "other.tgz"
    with tarfile.open(bad, "w:gz") as tar:
        data = json.dumps({"name": "left-pad"}).encode()
        info = tarfile.TarInfo("package/package.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(SystemExit, match="not the hl7-dictionary npm package"):
        tool.convert(bad)
