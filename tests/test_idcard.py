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
