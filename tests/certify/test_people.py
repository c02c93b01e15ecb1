"""Generated people are consistent: a valid Yunnan 身份证 whose birth date and sex are theirs."""

from __future__ import annotations

import re
from datetime import date

from hypothesis import given

from harness import idcard
from harness.certify.people import COUNTIES, DEFAULT, people


@given(people())
def test_a_generated_person_has_a_valid_yunnan_idcard_and_plausible_details(person):
    assert idcard.problem(person.certno, today=date(2026, 12, 1)) is None
    assert person.certno.startswith("53") and person.region in COUNTIES
    assert person.birth == idcard.birth_date(person.certno)
    assert person.gender == idcard.gender(person.certno)
    assert re.fullmatch(r"1[3-9]\d{9}", person.phone)
    assert 2 <= len(person.name) <= 3 and all("\u4e00" <= ch <= "\u9fff" for ch in person.name)
    values = person.values()
    assert values["person.birth8"] == f"{person.birth:%Y%m%d}" and values["person.sex"] in ("M", "F")
    assert values["person.fhir_gender"] == ("male" if person.gender == "1" else "female")


@given(people())
def test_renumbering_keeps_the_person_and_changes_only_the_sequence(person):
    other = person.renumbered(41)
    assert other.certno[:14] == person.certno[:14] and other.name == person.name
    assert idcard.is_valid(other.certno, today=date(2026, 12, 1))


def test_the_default_person_is_the_one_the_examples_are_written_for():
    assert DEFAULT.certno == "53010219850307123X" and DEFAULT.birth == date(1985, 3, 7)
