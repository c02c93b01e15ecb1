from datetime import date

import pytest

from harness import idcard


def test_check_digit_known_example():
    # The worked example of GB 11643-1999 annex: 11010519491231002X.
    assert idcard.check_digit("11010519491231002") == "X"
    assert idcard.is_valid("11010519491231002X")
    assert idcard.is_valid("11010519491231002x")


def test_make_round_trips_and_every_wrong_digit_fails():
    number = idcard.make("530102", date(1985, 3, 7), 123)
    assert idcard.is_valid(number)
    assert idcard.birth_date(number) == date(1985, 3, 7)
    assert idcard.gender(number) == "1"
    for wrong in "0123456789X":
        if wrong != number[17]:
            assert "check digit" in idcard.problem(number[:17] + wrong)


@pytest.mark.parametrize(
    ("number", "words"),
    [
        ("5301021985030712", "18 characters"),
        ("53010219850307123A", "17 digits"),
        ("990102198503071234", "province"),
        ("530102198502301234", "calendar date"),
        ("530102290001011234", "out of range"),
    ],
)
def test_problems_name_what_is_wrong(number, words):
    assert words in idcard.problem(number)


def test_make_rejects_bad_arguments():
    with pytest.raises(ValueError):
        idcard.make("53", date(1990, 1, 1), 1)
    with pytest.raises(ValueError):
        idcard.make("530102", date(1990, 1, 1), 1000)


def test_taiwan_residence_permit_numbers_use_region_83():
    # 台湾居民居住证 numbers start 830000; Hong Kong 810000 and Macao 820000 were accepted already.
    for region in ("830000", "810000", "820000"):
        number = idcard.make(region, date(1990, 1, 1), 123)
        assert idcard.is_valid(number), idcard.problem(number)
        assert idcard.kind(number) == "residence_permit" and idcard.cert_type(number) == "01"


def test_foreigners_permanent_residence_numbers_start_with_9():
    # 2023 外国人永久居留身份证: 9, issuing province (53 Yunnan), nationality code, birth date, check digit.
    number = idcard.make("953840", date(1980, 6, 1), 21)
    assert number.startswith("953840") and idcard.is_valid(number)
    assert idcard.kind(number) == "foreigner" and idcard.cert_type(number) == "07"
    assert idcard.birth_date(number) == date(1980, 6, 1)
    assert "issuing province" in idcard.problem(idcard.make("999840", date(1980, 6, 1), 21))
    assert "check digit" in idcard.problem(number[:17] + ("0" if number[17] != "0" else "1"))
