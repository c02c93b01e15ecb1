"""Every spec file has its header, sources and labels; the loader refuses malformed ones; the coverage
table in specs/README.md is what the files say."""

from __future__ import annotations

import re

import pytest

from harness import specfile
from harness.specfile import SPECS, SpecError

SPEC_FILES = sorted(
    [p for family in ("medins", "hl7v3", "cdc", "fhir") for p in (SPECS / family).rglob("*.yaml")]
    + list((SPECS / "hl7v2" / "value-sets").glob("*.yaml"))
    + [SPECS / "hl7v2" / "examples.yaml"]
)
PROFILES = sorted(p for p in (SPECS / "hl7v2").glob("*.yaml") if p.name != "examples.yaml")


def test_there_are_spec_files_to_check():
    assert len(SPEC_FILES) >= 20 and len(PROFILES) == 3


@pytest.mark.parametrize("path", SPEC_FILES, ids=lambda p: str(p.relative_to(SPECS)))
def test_every_spec_file_states_its_sources_and_labels_every_fact(path):
    spec = specfile.load(path)
    assert spec.meta["title"] and spec.family == path.relative_to(SPECS).parts[0]
    assert spec.meta["label"] == "S" or spec.meta["sources"], "verified facts need sources"
    for where, label, sources in specfile.facts(spec):
        assert label in specfile.LABELS, where
        if label in ("V", "V*"):
            assert sources, f"{where}: a {label} fact without a source"


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.name)
def test_hl7v2_profiles_state_their_sources_in_the_leading_comment(path):
    head = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        head.append(line)
    assert any("Sources" in line or "[V]" in line for line in head), path.name


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("name: x\n", "missing the 'meta' header"),
        ("meta: {family: medins, kind: k, title: t, format: 1, label: V}\n", "meta.sources: missing"),
        ("meta: {family: nope, kind: k, title: t, format: 1, label: M, sources: {}}\n", "meta.family 'nope'"),
        ("meta: {family: cdc, kind: k, title: t, format: 2, label: M, sources: {}}\n", "reads format 1"),
        (
            "meta: {family: cdc, kind: k, title: t, format: 1, label: M, sources: {}}\nx: {label: Q}\n",
            "x: label 'Q'",
        ),
        (
            "meta: {family: cdc, kind: k, title: t, format: 1, label: M, sources: {A: a}}\n"
            "x: {y: {source: B}}\n",
            "x.y: source B is not declared",
        ),
        (
            "meta: {family: cdc, kind: k, title: t, format: 1, label: M, sources: {A: a}}\nx: {label: V}\n",
            "x: a V fact must name its source",
        ),
        ("meta: [\n", "not valid YAML"),
    ],
)
def test_the_loader_names_the_file_and_key_of_every_problem(tmp_path, text, words):
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SpecError) as caught:
        specfile.load(path)
    assert words in str(caught.value) and "bad.yaml" in str(caught.value)


def test_errors_carry_the_line_of_the_deepest_key_they_name(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(
        "meta: {family: cdc, kind: k, title: t, format: 1, label: M, sources: {A: a}}\n"
        "tables:\n  t1:\n    fields:\n      f: {label: Q}\n",
        encoding="utf-8",
    )
    with pytest.raises(SpecError, match=r"s.yaml:5: tables.t1.fields.f: label 'Q'"):
        specfile.load(path)
    assert specfile.line_of(path, "tables.t1.fields.nope") == 4  # the deepest key that is there
    assert "s.yaml:" not in str(SpecError("no file named here"))


def test_family_and_kind_are_checked_when_asked(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("meta: {family: cdc, kind: codes, title: t, format: 1, label: M, sources: {}}\n", "utf-8")
    with pytest.raises(SpecError, match="expected 'medins'"):
        specfile.load(path, family="medins")
    with pytest.raises(SpecError, match="expected 'tables'"):
        specfile.load(path, kind="tables")


def test_labels_and_sources_inherit_down_the_tree(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(
        "meta: {family: cdc, kind: k, title: t, format: 1, label: V, source: A, sources: {A: a, B: b}}\n"
        "t: {f: {label: M}, g: {source: B, h: {label: L}}}\n",
        encoding="utf-8",
    )
    facts = {where: (label, sources) for where, label, sources in specfile.facts(specfile.load(path))}
    assert facts == {"t.f": ("M", ("A",)), "t.g": ("V", ("B",)), "t.g.h": ("L", ("B",))}


def test_label_counts_count_used_values_by_their_inherited_label(tmp_path):
    (tmp_path / "cdc").mkdir()
    (tmp_path / "cdc" / "s.yaml").write_text(
        "meta: {family: cdc, kind: k, title: t, format: 1, label: V, source: A, sources: {A: a}}\n"
        "t: {f: {name: 名, max: 2, required: true, label: M}, g: {type: str, note: n, codes: [a, b]}}\n",
        encoding="utf-8",
    )
    assert specfile.label_counts(tmp_path) == {"cdc": {"M": 2, "V": 3}}


def test_the_coverage_table_matches_the_files():
    cov = specfile.coverage()
    assert cov["medins"]["modelled"] >= 75
    assert cov["hl7v3"]["modelled"] == 69 and cov["hl7v3"]["levels"] == {
        "三级": 3,
        "四级乙等": 10,
        "四级甲等": 33,
        "五级乙等": 23,
    }
    assert cov["cdc"]["modelled"] == cov["cdc"]["named"] == 20
    table = (SPECS / "README.md").read_text(encoding="utf-8")
    rows = {
        m.group(1): (m.group(2), m.group(3))
        for m in re.finditer(r"^\| ([^|]+?) \| (\d+) \| (\d+)", table, re.M)
    }
    assert rows["医保 transactions"] == (str(cov["medins"]["modelled"]), str(cov["medins"]["named"]))
    assert rows["互联互通 actions"] == ("69", "69")
    assert rows["CDC front-end tables"] == (str(cov["cdc"]["modelled"]), str(cov["cdc"]["named"]))
    for level, count in cov["hl7v3"]["levels"].items():
        assert f"{level} {count}/{count}" in table
    names = {
        "medins": "医保",
        "hl7v3": "互联互通",
        "cdc": "CDC",
        "hl7v2": "HL7 v2 value sets",
        "fhir": "FHIR required bindings",
    }
    for family, tally in specfile.label_counts().items():
        shown = [str(tally.get(label, 0)) for label in ("V", "V*", "M", "L", "S")]
        assert f"| {names[family]} | {' | '.join(shown)} |" in table, family
        assert set(tally) <= set(specfile.LABELS)


def test_spec_files_are_found_by_their_header_and_hl7v2_profiles_need_none():
    # HL7 v2 interface profiles are read by the validator's own loader and may go without `meta`.
    found = set(specfile.spec_files())
    assert SPECS / "fhir" / "required-bindings.yaml" in found
    assert SPECS / "medins" / "codes.yaml" in found
    assert not any(p in found for p in PROFILES)
