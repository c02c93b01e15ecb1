"""The structure matcher: compiled NFA / lazy DFA over segment ids, with diagnosis when it fails."""

from __future__ import annotations

import pytest

from harness.hl7v2 import reference
from harness.hl7v2.validation.structure import Structure


@pytest.fixture(scope="module")
def std():
    return reference.load("2.5")


def check(st: Structure, ids: str) -> list[tuple[str, int | None, str | None]]:
    seq = ids.split()
    return [
        (f.code, f.location.segment_index, f.location.segment)
        for f in st.check(seq, list(range(1, len(seq) + 1)))
    ]


def test_valid_adt_with_groups(std):
    st = Structure.compile("ADT_A01", std.structures["ADT_A01"])
    assert check(st, "MSH EVN PID PV1") == []
    assert check(st, "MSH EVN PID NK1 NK1 PV1 OBX AL1 DG1 PR1 ROL PR1 IN1 IN2 IN1") == []


def test_missing_required_segment(std):
    st = Structure.compile("ADT_A01", std.structures["ADT_A01"])
    assert check(st, "MSH PID PV1") == [("HL7-STRUCT-MISSING-SEGMENT", 2, "EVN")]
    assert check(st, "MSH EVN PID") == [("HL7-STRUCT-MISSING-SEGMENT", 4, "PV1")]


def test_required_segment_inside_optional_group(std):
    st = Structure.compile("ADT_A01", std.structures["ADT_A01"])
    found = st.check("MSH EVN PID PV1 IN2".split(), [1, 2, 3, 4, 5])
    assert [(f.code, f.location.segment, f.location.group) for f in found] == [
        ("HL7-STRUCT-MISSING-SEGMENT", "IN1", "ADT_A01_INSURANCE")
    ]


def test_cardinality_and_order(std):
    st = Structure.compile("ADT_A01", std.structures["ADT_A01"])
    assert check(st, "MSH EVN PID PID PV1") == [("HL7-STRUCT-TOO-MANY", 4, "PID")]
    found = check(st, "MSH EVN PV1 PID")
    assert found[0] == ("HL7-STRUCT-SEGMENT-ORDER", 3, "PV1")


def test_every_problem_is_reported_not_only_the_first(std):
    st = Structure.compile("ADT_A01", std.structures["ADT_A01"])
    found = check(st, "MSH PID PV1 XXX PV1")
    codes = [c for c, _, _ in found]
    assert codes == ["HL7-STRUCT-MISSING-SEGMENT", "HL7-STRUCT-UNEXPECTED-SEGMENT", "HL7-STRUCT-TOO-MANY"]


def test_repeating_nested_groups(std):
    st = Structure.compile("ORU_R01", std.structures["ORU_R01"])
    assert check(st, "MSH PID PV1 ORC OBR OBX NTE OBX OBR OBX PID OBR OBX") == []
    assert check(st, "MSH PID OBX") == [("HL7-STRUCT-MISSING-SEGMENT", 3, "OBR")]
    assert check(st, "MSH PID") == [("HL7-STRUCT-MISSING-SEGMENT", 3, "OBR")]


def test_choice_group(std):
    body = (
        "seq",
        (("S", "MSH", 1, 1), ("G", "C", 1, 1, ("choice", (("S", "OBR", 1, 1), ("S", "RXO", 1, 1))))),
    )
    st = Structure.compile("X", body)
    assert check(st, "MSH OBR") == []
    assert check(st, "MSH RXO") == []
    assert check(st, "MSH OBR RXO")[0][0] in ("HL7-STRUCT-SEGMENT-ORDER", "HL7-STRUCT-TOO-MANY")
    assert check(st, "MSH") == [("HL7-STRUCT-MISSING-SEGMENT", 2, "OBR")]


def test_finite_cardinality_is_expanded(std):
    body = ("seq", (("S", "MSH", 1, 1), ("S", "NTE", 0, 2)))
    st = Structure.compile("X", body)
    assert check(st, "MSH NTE NTE") == []
    assert check(st, "MSH NTE NTE NTE") == [("HL7-STRUCT-TOO-MANY", 3 + 1, "NTE")]


def test_every_structure_of_every_version_compiles_and_accepts_its_minimum():
    for version in reference.VERSIONS:
        std = reference.load(version)
        for name, body in std.structures.items():
            st = Structure.compile(name, body)
            minimum = _minimum(body)
            assert st.matches(minimum), (version, name, minimum)


def _minimum(body) -> list[str]:
    kind, children = body
    if kind == "choice":
        children = children[:1]
    out: list[str] = []
    for child in children:
        if child[2] < 1:
            continue
        part = [child[1]] if child[0] == "S" else _minimum(child[4])
        for _ in range(child[2]):
            out.extend("ZZZ" if s == "*" else s for s in part)
    return out
