"""One model over every family: spec folders load into the common view, broken ones name file and key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness import spec
from harness.specfile import SPECS, SpecError


@pytest.mark.parametrize(
    ("path", "family", "operations"),
    [
        ("medins", "medins", 96),
        ("hl7v3", "hl7v3", 69),
        ("cdc", "cdc", 20),
        ("fhir", "fhir", 3),
        ("hl7v2/yunnan-his-adt.yaml", "hl7v2", 9),
        ("hl7v2/lis-oru.yaml", "hl7v2", 2),
    ],
)
def test_every_family_loads_into_the_common_view(path, family, operations):
    interface = spec.load(SPECS / path)
    assert interface.family == family and len(interface.operations) == operations
    assert interface.examples is not None and interface.transport and interface.rejection
    assert interface.version.startswith("format 1, sha256 ")
    assert all(f.is_file() for f in interface.files)


def test_the_version_changes_with_the_files(tmp_path):
    import shutil

    shutil.copytree(SPECS, tmp_path / "specs")  # cdc/codes.yaml reads ../hl7v2/value-sets
    copy = tmp_path / "specs" / "cdc"
    before = spec.load(copy).version
    tables = copy / "tables.yaml"
    tables.write_text(tables.read_text("utf-8").replace("max: 80", "max: 81", 1), "utf-8")
    assert spec.load(copy).version != before


def test_a_folder_of_several_hl7v2_profiles_asks_for_one():
    with pytest.raises(SpecError, match="name one: .*yunnan-his-adt.yaml"):
        spec.load(SPECS / "hl7v2")


def test_a_broken_spec_names_its_file_and_key(tmp_path):
    import shutil

    copy = tmp_path / "medins"
    shutil.copytree(SPECS / "medins", copy)
    outpatient = copy / "transactions" / "outpatient.yaml"
    outpatient.write_text(
        outpatient.read_text("utf-8").replace("type: str, max: 30", "type: strr, max: 30", 1)
    )
    with pytest.raises(
        SpecError, match=r"outpatient.yaml:\d+: transactions\.2201\.input\.data\.fields\.psn_no\.type 'strr'"
    ):
        spec.load(copy)


def test_something_that_is_no_spec_is_refused(tmp_path):
    with pytest.raises(SpecError, match="no spec files here"):
        spec.load(tmp_path)
    with pytest.raises(SpecError, match="no such spec folder"):
        spec.load(Path(tmp_path / "nope"))


@pytest.mark.parametrize(
    ("family", "file", "old", "new", "words"),
    [
        (
            "cdc",
            "tables.yaml",
            "required: true, label: M}",
            "requird: true, label: M}",
            "unknown key(s) requird",
        ),
        (
            "hl7v3",
            "services.yaml",
            "    category: 个人信息注册",
            "    categroy: 个人信息注册",
            "unknown key(s) categroy",
        ),
        (
            "medins",
            "transactions/outpatient.yaml",
            "required: true}",
            "requierd: true}",
            "unknown key(s) requierd",
        ),
    ],
)
def test_a_mistyped_key_is_refused_with_its_line(tmp_path, family, file, old, new, words):
    import shutil

    shutil.copytree(SPECS, tmp_path / "specs")
    path = tmp_path / "specs" / family / file
    path.write_text(path.read_text("utf-8").replace(old, new, 1), "utf-8")
    with pytest.raises(SpecError) as caught:
        spec.load(tmp_path / "specs" / family)
    assert re.match(rf"{re.escape(str(path))}:\d+: ", str(caught.value)) and words in str(caught.value)


def test_a_bare_name_means_the_shipped_spec_unless_such_a_path_is_here(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert spec.resolve("medins") == SPECS / "medins"
    assert spec.resolve("yunnan-his-adt") == SPECS / "hl7v2" / "yunnan-his-adt.yaml"
    assert spec.load("cdc").family == "cdc"
    (tmp_path / "medins").mkdir()  # a folder of that name here wins
    assert spec.resolve("medins") == Path("medins")
    assert spec.resolve("nothing-like-it") == Path("nothing-like-it")
    assert spec.resolve("sub/medins") == Path("sub/medins")  # a path is never looked up
    with pytest.raises(SpecError, match="nothing-like-it: no such spec folder"):
        spec.load("nothing-like-it")
