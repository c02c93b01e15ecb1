"""Pseudonyms keep the format checks look at, never equal their original, and are consistent per key."""

from __future__ import annotations

import string
from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from harness import idcard
from harness.mask import names
from harness.mask.permutation import Permutation
from harness.mask.pseudonym import MOBILE_PREFIXES, Pseudonyms, admin_prefix

from .support import KEY

REGIONS = ["530102", "530103", "532901", "110105", "440305", "650102"]
HAN = st.sampled_from("张王李赵周段杨乗亅𬌗兰秀英伟芳娜敏静丽强磊军洋勇艳杰娟涛明超霞平刚桂华玉萍红建文")
P = Pseudonyms(KEY)


@st.composite
def id_numbers(draw) -> str:
    born = draw(st.dates(min_value=date(1900, 1, 1), max_value=date(2025, 12, 31)))
    number = idcard.make(draw(st.sampled_from(REGIONS)), born, draw(st.integers(0, 999)))
    return number.lower() if draw(st.booleans()) and number.endswith("X") else number


def test_a_keyed_permutation_is_a_single_cycle_over_its_domain():
    perm = Permutation(KEY)
    for n in (2, 3, 7, 10, 500, 1009):
        image = [perm.permute(n, x, b"t") for x in range(n)]
        assert sorted(image) == list(range(n))
        assert all(y != x for x, y in enumerate(image))


@given(st.text(alphabet="0123456789", min_size=1, max_size=80))
def test_digit_strings_keep_length_and_whether_they_start_with_zero(text):
    out = Permutation(KEY).digits(text, b"t")
    assert len(out) == len(text) and out.isdigit()
    if len(text) > 1:
        assert (out[0] == "0") == (text[0] == "0")
    if text.strip("0") or len(text) == 1:
        assert out != text


@given(id_numbers())
@settings(max_examples=300)
def test_a_masked_id_number_is_a_valid_id_number_of_the_same_region_and_sex(number):
    out = P.identifier(number)
    assert out != number
    assert idcard.problem(out, today=date(9999, 1, 1)) is None
    assert out[:6] == number[:6]
    assert idcard.gender(out.upper()) == idcard.gender(number.upper())
    if number[-1] == "x" and out[-1] in "xX":
        assert out[-1] == "x"
    shift = P.offset_days(number.upper())
    assert idcard.birth_date(out) == idcard.birth_date(number) - timedelta(days=shift)
    assert 1 <= shift <= P.max_shift_days


@given(id_numbers())
def test_with_dates_kept_a_masked_id_number_keeps_its_birth_date(number):
    out = Pseudonyms(KEY, shift_dates=False).identifier(number)
    assert out[:14] == number[:14] and out != number and idcard.is_valid(out, today=date(9999, 1, 1))


def test_different_id_numbers_of_one_region_and_birth_date_never_share_a_pseudonym():
    numbers = [idcard.make("530102", date(1990, 1, 1), s) for s in range(1000)]
    assert len({P.identifier(n) for n in numbers}) == 1000


@given(st.sampled_from(MOBILE_PREFIXES), st.integers(0, 10**8 - 1), st.sampled_from(["", "+86", "+86 "]))
def test_a_masked_mobile_number_is_an_11_digit_mobile_number(prefix, rest, cc):
    number = f"{cc}{prefix}{rest:08d}"
    out = P.phone(number)
    assert out != number and out.startswith(cc)
    core = out[len(cc) :]
    assert len(core) == 11 and core.isdigit() and core[:3] in MOBILE_PREFIXES


def test_landlines_keep_their_area_code_and_email_addresses_their_domain():
    assert P.phone("0871-65123456").startswith("0871-") and P.phone("0871-65123456") != "0871-65123456"
    out = P.phone("mailto:zhang.wei@hospital.cn")
    assert out.startswith("mailto:") and out.endswith("@hospital.cn") and "zhang" not in out


@given(st.lists(st.text(HAN, min_size=1, max_size=3), min_size=1, max_size=3))
@settings(max_examples=300)
def test_a_chinese_name_stays_a_chinese_name_of_the_same_length_split_or_whole(parts):
    whole = P.name(["".join(parts)])[0]
    split = P.name(parts)
    assert "".join(split) == whole
    assert [len(p) for p in split] == [len(p) for p in parts]
    assert whole != "".join(parts)
    assert whole[0] in names.SURNAMES or whole[:2] in names.COMPOUND_SURNAMES
    assert all(c in names.GIVEN for c in whole[1:]) or whole[:2] in names.COMPOUND_SURNAMES
    for codec in ("gb2312", "big5", "shift_jis", "euc_kr"):
        whole.encode(codec)


def test_compound_surnames_give_compound_surnames():
    out = P.name(["欧阳娜娜"])[0]
    assert out[:2] in names.COMPOUND_SURNAMES and len(out) == 4


@given(st.text(st.sampled_from(string.ascii_letters), min_size=1, max_size=12))
def test_latin_names_stay_latin_letters_of_the_same_length_and_case(word):
    out = P.name([word])[0]
    assert len(out) == len(word) and out.isascii() and out.isalpha() and out.upper() != word.upper()
    assert [c.isupper() for c in out] == [c.isupper() for c in word]
    assert P.name([f"{word} {word}"])[0] == f"{out} {out}"


def test_every_character_table_fits_every_cjk_charset():
    for table in (names.SURNAMES, names.GIVEN, "".join(names.COMPOUND_SURNAMES)):
        for codec in ("gb2312", "big5", "shift_jis", "euc_kr"):
            table.encode(codec)
    assert len(set(names.SURNAMES)) == len(names.SURNAMES) >= 100
    assert len(set(names.GIVEN)) == len(names.GIVEN) >= 150


def test_addresses_keep_their_divisions_down_to_the_county_and_their_place_words():
    original = "云南省昆明市五华区青年路123号5栋2单元301室"
    out = P.address(original)
    assert out.startswith("云南省昆明市五华区") and len(out) == len(original) and out != original
    assert [c for c in out if c in "路号栋单元室"] == [c for c in original if c in "路号栋单元室"]
    assert admin_prefix("五华区市府路1号") == 3  # a street named 市府路 is not a division


@given(
    st.dates(min_value=date(1900, 6, 1), max_value=date(2030, 1, 1)),
    st.sampled_from(["%Y%m%d", "%Y-%m-%d", "%Y%m%d%H%M", "%Y-%m-%dT08:30:00+08:00", "%Y%m", "%Y"]),
)
def test_dates_move_back_by_the_patient_offset_in_their_own_format(day, fmt):
    text = day.strftime(fmt)
    out = P.date(text, "someone")
    assert len(out) == len(text) and out != text or fmt == "%Y" or fmt == "%Y%m"
    if fmt in ("%Y%m%d", "%Y-%m-%d"):
        assert out == (day - timedelta(days=P.offset_days("someone"))).strftime(fmt)


def test_the_same_value_gives_the_same_pseudonym_under_one_key_and_another_under_another():
    other = Pseudonyms(b"another-key-of-enough-length-1234")
    for value in ("53010219850307123X", "ZY0001", "13800000000"):
        again = Pseudonyms(KEY)
        assert P.identifier(value) == again.identifier(value) != other.identifier(value)
