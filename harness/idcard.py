"""GB 11643 resident ID numbers (身份证): check digit, validation and invented numbers for fixtures.

Simulators and fixtures use invented people whose numbers must still pass the checks a real
medical-insurance centre or CDC front end applies (region, birth date, ISO 7064 mod 11-2 check digit).

Two other 18-character documents share the layout and are accepted: the 港澳台居民居住证 (regions 81
Hong Kong, 82 Macao, 83 Taiwan) and the 2023 外国人永久居留身份证, which starts with 9, then the
issuing province (two digits), then the nationality code, with the birth date and check digit where a
身份证 has them (the 9-prefixed layout is recalled, not read in a public source: label M).
"""

from __future__ import annotations

import re
from datetime import date

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK_CHARS = "10X98765432"
# First two digits: the provinces, autonomous regions and municipalities of GB/T 2260 (plus 71/81/82),
# and 83, which 台湾居民居住证 numbers use (830000...).
PROVINCES = frozenset(
    "11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 50 51 52 53 54 61 62 63 64 65 "
    "71 81 82 83".split()
)
FOREIGNER = "9"  # first digit of the 2023 外国人永久居留身份证
_SHAPE = re.compile(r"^\d{17}[\dX]$")


def check_digit(first17: str) -> str:
    """The 18th character for the first 17 digits (ISO 7064 MOD 11-2)."""
    if len(first17) != 17 or not first17.isdigit():
        raise ValueError(f"expected 17 digits, got {first17!r}")
    total = sum(int(d) * w for d, w in zip(first17, WEIGHTS, strict=True))
    return CHECK_CHARS[total % 11]


def problem(number: str, *, today: date | None = None) -> str | None:
    """Why `number` is not a valid 18-character 身份证 number, or None when it is."""
    if not isinstance(number, str):
        return f"expected a string, got {type(number).__name__}"
    text = number.upper() if number.endswith("x") else number
    if len(text) != 18:
        return f"must be 18 characters, got {len(text)}"
    if not _SHAPE.match(text):
        return "must be 17 digits followed by a digit or X"
    if text[0] == FOREIGNER:
        if text[1:3] not in PROVINCES:
            return f"外国人永久居留身份证 {text[:3]}: {text[1:3]} is not a known issuing province code"
    elif text[:2] not in PROVINCES:
        return f"region code {text[:6]} does not start with a known province code"
    try:
        born = date(int(text[6:10]), int(text[10:12]), int(text[12:14]))
    except ValueError:
        return f"birth date {text[6:14]} is not a calendar date"
    if born.year < 1890 or born > (today or date.today()):
        return f"birth date {born.isoformat()} is out of range"
    expected = check_digit(text[:17])
    if text[17] != expected:
        return f"check digit {text[17]} is wrong (expected {expected})"
    return None


def is_valid(number: str, *, today: date | None = None) -> bool:
    return problem(number, today=today) is None


def make(region: str, birth: date, sequence: int) -> str:
    """An invented but valid number: 6-digit region, birth date, 3-digit sequence (odd = male)."""
    if len(region) != 6 or not region.isdigit():
        raise ValueError(f"region must be 6 digits, got {region!r}")
    if not 0 <= sequence <= 999:
        raise ValueError(f"sequence must be 0-999, got {sequence}")
    first17 = f"{region}{birth:%Y%m%d}{sequence:03d}"
    return first17 + check_digit(first17)


def birth_date(number: str) -> date:
    """Birth date of a valid number."""
    return date(int(number[6:10]), int(number[10:12]), int(number[12:14]))


def gender(number: str) -> str:
    """GB/T 2261.1 gender code from the sequence parity: '1' male, '2' female."""
    return "1" if int(number[16]) % 2 else "2"


def kind(number: str) -> str:
    """Which document a valid number is: resident (身份证), residence permit (居住证) or foreigner."""
    if number[0] == FOREIGNER:
        return "foreigner"
    return "residence_permit" if number[:2] in ("81", "82", "83") else "resident"


def cert_type(number: str) -> str:
    """The 医保 psn_cert_type of a valid number: 07 外国人永久居留证 for 9-prefixed ones, else 01."""
    return "07" if kind(number) == "foreigner" else "01"
