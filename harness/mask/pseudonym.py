"""Format-preserving pseudonyms of single values, all derived from one secret key (sans-IO).

The same value always gets the same pseudonym under the same key, whatever message, kind or run it comes
from, so joins, replay comparison and certification still work on masked data. Each pseudonym keeps the
shape checks look at: a 身份证 keeps its region code, birth date (or the patient's shifted one) and
sex, and gets a correct GB 11643 check digit; a mobile number stays 11 digits with a mobile prefix; a
Chinese name stays a Chinese name of the same length with a common surname; Latin stays Latin; every
value keeps its length, so field-length checks judge the masked message as they judged the original.
No value is ever its own pseudonym.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, timedelta

from harness import idcard
from harness.mask import names
from harness.mask.permutation import Permutation

_MOBILE = re.compile(r"^(\+86[- ]?|0086[- ]?|86[- ])?(1[3-9]\d)([- ]?)(\d{4})([- ]?)(\d{4})$")
_LANDLINE = re.compile(r"^(\(?0\d{2,3}\)?)([- ]?)([2-9]\d{6,7})((?:[-#转]\d{1,6})?)$")
_DATE = re.compile(r"^(\d{4})(?:(-?)(\d{2})(?:(-?)(\d{2}))?)?(.*)$", re.S)
_ADMIN_UNIT = re.compile(
    r"[^\W\d_a-zA-Z路街道巷弄号號院栋棟幢楼樓村组組]{1,11}?"
    r"(?:特别行政区|自治区|自治州|自治县|地区|省|市|州|盟|区|區|县|縣|旗)"
)
_CACHE_LIMIT = 200_000

MOBILE_PREFIXES = tuple(
    str(p)
    for p in [*range(130, 140), 145, 147, 149, *range(150, 154), *range(155, 160), 166,
              *range(170, 174), *range(175, 179), *range(180, 190), 191, 193, 195, 196, 197, 198, 199]
)  # fmt: skip
"""Mobile number prefixes the carriers hand out; a masked mobile number gets one of these."""
_MIN_BIRTH = date(1890, 1, 1)


class Pseudonyms:
    """The pseudonym of every kind of value, under one key. Results are cached (bounded)."""

    def __init__(self, key: bytes, *, shift_dates: bool = True, max_shift_days: int = 365) -> None:
        if max_shift_days < 1:
            raise ValueError("max_shift_days must be at least 1")
        self._perm = Permutation(key)
        self.shift_dates = shift_dates
        self.max_shift_days = max_shift_days
        self._cache: dict[tuple[str, str], str] = {}

    def _cached(self, kind: str, value: str, make) -> str:
        key = (kind, value)
        out = self._cache.get(key)
        if out is None:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            out = self._cache[key] = make(value)
        return out

    # identifiers -------------------------------------------------------------------------------------
    def identifier(self, value: str) -> str:
        """A 身份证 number gets `idcard`; anything else keeps its leading letters (a type prefix such as
        ZY or MZ), punctuation and character classes, its digits and other letters permuted."""
        return self._cached("id", value, lambda v: _inside_spaces(v, self._identifier))

    def _identifier(self, core: str) -> str:
        if len(core) == 18 and idcard.problem(core, today=date(9999, 12, 31)) is None:
            return self._idcard(core)
        return self._generic(core, b"id")

    def idcard(self, value: str) -> str:
        """A valid 身份证 number's pseudonym: same region, the birth date shifted with the patient's other
        dates (or kept), same sex, a permuted sequence number and a correct check digit."""
        return self.identifier(value)

    def _idcard(self, value: str) -> str:
        region, born, seq = value[:6], idcard.birth_date(value), int(value[14:17])
        new_born = born
        if self.shift_dates:
            new_born = born - timedelta(days=self.offset_days(value.upper()))
            if new_born < _MIN_BIRTH:
                new_born = born + timedelta(days=self.offset_days(value.upper()))
        parity = seq % 2
        tweak = b"idcard|" + value[:14].encode("ascii")
        new_seq = 2 * self._perm.permute(500, seq // 2, tweak) + parity
        first17 = f"{region}{new_born:%Y%m%d}{new_seq:03d}"
        check = idcard.check_digit(first17)
        return first17 + (check.lower() if value[17] == "x" else check)

    def _generic(self, core: str, label: bytes, *, keep_prefix: bool = True) -> str:
        """Digits permuted as one number, ASCII letters after the leading ones (a type prefix such as ZY
        or MZ, kept when `keep_prefix`) as one word, Han characters replaced, everything else kept: the
        value keeps its shape."""
        prefix_len = 0
        while keep_prefix and prefix_len < len(core) and names.is_latin_letter(core[prefix_len]):
            prefix_len += 1
        if prefix_len == len(core):
            prefix_len = 0  # all letters: nothing is a type prefix
        prefix, rest = core[:prefix_len], core[prefix_len:]
        shape = "".join("9" if c.isdigit() else "A" if names.is_latin_letter(c) else c for c in rest)
        tweak = label + b"|" + (prefix + "|" + shape).encode("utf-8", "surrogatepass")
        digits = "".join(c for c in rest if c.isascii() and c.isdigit())
        letters = "".join(c for c in rest if names.is_latin_letter(c))
        new_digits = iter(self._perm.digits(digits, tweak + b"|d") if digits else "")
        new_letters = iter(self._perm.letters(letters, tweak + b"|a") if letters else "")
        others = [c for c in rest if not (c.isascii() and c.isalnum())]
        new_others = iter(self._text_chars(others, tweak + b"|o"))
        out = []
        for c in rest:
            if c.isascii() and c.isdigit():
                out.append(next(new_digits))
            elif names.is_latin_letter(c):
                out.append(next(new_letters))
            else:
                out.append(next(new_others))
        return prefix + "".join(out)

    # phones and e-mail -------------------------------------------------------------------------------
    def phone(self, value: str) -> str:
        """Mobile numbers stay 11-digit mobile numbers (a carrier prefix, the +86 form kept); landlines keep
        their area code; anything else keeps its shape with its digits permuted. `tel:` and `mailto:`
        URIs keep their scheme; an e-mail address goes to `email`."""
        return self._cached("phone", value, lambda v: _inside_spaces(v, self._phone))

    def _phone(self, core: str) -> str:
        scheme = ""
        lowered = core.lower()
        for name in ("tel:", "fax:", "sms:", "mailto:"):
            if lowered.startswith(name):
                scheme, core = core[: len(name)], core[len(name) :]
                break
        if "@" in core:
            return scheme + self.email(core)
        m = _MOBILE.match(core)
        if m:
            cc, prefix, sep1, mid, sep2, tail = m.groups()
            if prefix in MOBILE_PREFIXES:
                index = self._perm.permute(
                    len(MOBILE_PREFIXES), MOBILE_PREFIXES.index(prefix), b"mobile-prefix"
                )
            else:
                index = self._perm.choose(len(MOBILE_PREFIXES), b"mobile-prefix", prefix.encode())
            new_prefix = MOBILE_PREFIXES[index]
            digits = f"{self._perm.permute(10**8, int(mid + tail), b'mobile|' + prefix.encode()):08d}"
            return scheme + f"{cc or ''}{new_prefix}{sep1}{digits[:4]}{sep2}{digits[4:]}"
        m = _LANDLINE.match(core)
        if m:
            area, sep, local, ext = m.groups()
            tweak = b"landline|" + area.encode()
            new_local = local[0] + self._perm.digits(local[1:], tweak) if len(local) > 1 else local
            new_ext = ext[0] + self._perm.digits(ext[1:], tweak + b"|ext") if ext else ""
            if new_local == local and new_ext == ext:  # 0000000 after the first digit
                new_local = self._generic(local, tweak)
            return scheme + area + sep + new_local + new_ext
        return scheme + self._generic(core, b"phone")

    def email(self, value: str) -> str:
        """The local part keeps its shape with new letters and digits; the domain is kept."""
        return self._cached("email", value, self._email)

    def _email(self, value: str) -> str:
        local, at, domain = value.rpartition("@")
        if not at or not local:
            return self._generic(value, b"email", keep_prefix=False)
        label = b"email|" + domain.lower().encode("utf-8", "surrogatepass")
        return self._generic(local, label, keep_prefix=False) + at + domain

    # names -------------------------------------------------------------------------------------------
    def name(self, parts: Sequence[str]) -> list[str]:
        """One person's name given as its parts in order (family, given, middle...; or the whole name as
        one part). The Han characters of all parts are masked together, so 段^亅乗 in HL7 v2 and 段亅乗
        in JSON give the same name: the first becomes a common surname (a compound one for a compound
        surname), the others common given-name characters. Latin words are masked one by one, keeping
        length and case; punctuation such as the middle dot of minority names is kept."""
        key = "\x1f".join(parts)
        joined = self._cached("name", key, self._name)
        return joined.split("\x1f") if len(parts) > 1 else [joined]

    def _name(self, key: str) -> str:
        parts = key.split("\x1f")
        han = "".join(c for p in parts for c in p if names.is_cjk(c))
        han_out: list[str] = []
        if han:
            attempt = 0
            while True:
                picks = self._perm.stream(
                    b"name-han|%d" % attempt, han.encode("utf-8", "surrogatepass"), len(han)
                )
                if len(han) >= 3 and han[:2] in names.COMPOUND_SURNAMES_SEEN:
                    surname = names.COMPOUND_SURNAMES[picks[0] % len(names.COMPOUND_SURNAMES)]
                else:
                    surname = names.SURNAMES[picks[0] % len(names.SURNAMES)]
                given = [names.GIVEN[p % len(names.GIVEN)] for p in picks[len(surname) :]]
                han_out = list(surname) + given
                if "".join(han_out) != han:
                    break
                attempt += 1
        han_iter = iter(han_out)
        out = []
        for part in parts:
            text = "".join(next(han_iter) if names.is_cjk(c) else c for c in part)
            out.append(_replace_words(text, self._latin_word))
        return "\x1f".join(out)

    def _latin_word(self, word: str) -> str:
        if not word:
            return word
        upper = self._cached("latin", word.upper(), self._make_latin_word)
        return "".join(u if o.isupper() else u.lower() for u, o in zip(upper, word, strict=True))

    def _make_latin_word(self, upper: str) -> str:
        attempt = 0
        while True:
            picks = self._perm.stream(b"name-latin|%d" % attempt, upper.encode("utf-8"), len(upper))
            out = "".join(
                names.VOWELS[p % len(names.VOWELS)]
                if c in "AEIOUY"
                else names.CONSONANTS[p % len(names.CONSONANTS)]
                for c, p in zip(upper, picks, strict=True)
            )
            if out != upper:
                return out
            attempt += 1

    # addresses and free text -------------------------------------------------------------------------
    def address(self, value: str) -> str:
        """A Chinese address keeps its administrative divisions down to the county (云南省昆明市五华区, as
        the 身份证 keeps its region) and the words saying what kind of place follows (路, 号, 栋, 室);
        the names and numbers after them are replaced, length kept."""
        return self._cached("address", value, self._address)

    def _address(self, value: str) -> str:
        keep = admin_prefix(value)
        rest = value[keep:]
        if not rest.strip():
            return value
        return value[:keep] + self._free(rest, b"address", names.ADDRESS_KEEP)

    def text(self, value: str) -> str:
        """Free text: every Han character, letter and digit replaced, punctuation and length kept."""
        return self._cached("text", value, lambda v: self._free(v, b"text", frozenset()))

    def _free(self, value: str, label: bytes, keep: frozenset[str]) -> str:
        attempt = 0
        while True:
            picks = self._perm.stream(
                b"%s|%d" % (label, attempt), value.encode("utf-8", "surrogatepass"), len(value)
            )
            out = []
            for c, p in zip(value, picks, strict=True):
                if c in keep:
                    out.append(c)
                elif names.is_cjk(c):
                    out.append(names.GIVEN[p % len(names.GIVEN)])
                elif c.isdigit():
                    out.append(str(p % 10))
                elif c.isalpha():
                    pool = names.VOWELS if c.upper() in "AEIOUY" else names.CONSONANTS
                    letter = pool[p % len(pool)]
                    out.append(letter.lower() if c.islower() else letter)
                else:
                    out.append(c)
            text = "".join(out)
            if text != value or not any(c.isalnum() and c not in keep for c in value):
                return text
            attempt += 1

    def _text_chars(self, chars: list[str], tweak: bytes) -> list[str]:
        if not chars:
            return []
        picks = self._perm.stream(tweak, "".join(chars).encode("utf-8", "surrogatepass"), len(chars))
        return [
            names.GIVEN[p % len(names.GIVEN)] if names.is_cjk(c) else c
            for c, p in zip(chars, picks, strict=True)
        ]

    # dates and regions -------------------------------------------------------------------------------
    def offset_days(self, patient: str) -> int:
        """How many days this patient's dates move back: 1 to max_shift_days, keyed by the patient."""
        return 1 + self._perm.choose(
            self.max_shift_days, b"date-shift", patient.encode("utf-8", "surrogatepass")
        )

    def date(self, value: str, patient: str | None) -> str | None:
        """The date moved back by the patient's offset, in the value's own format and precision
        (19850615, 1985-06-15T08:30:00+08:00, 198506); None when the value is not a date."""
        if not self.shift_dates or not value.strip():
            return value
        m = _DATE.match(value)
        if not m:
            return None
        year, sep1, month, sep2, day, rest = m.groups()
        if rest and rest[0].isdigit() and day is None:
            return None
        try:
            original = date(int(year), int(month or 1), int(day or 1))
        except ValueError:
            return None
        shifted = original - timedelta(days=self.offset_days(patient or ""))
        out = f"{shifted.year:04d}"
        if month is not None:
            out += f"{sep1}{shifted.month:02d}"
            if day is not None:
                out += f"{sep2}{shifted.day:02d}"
        return out + rest

    @staticmethod
    def region(value: str) -> str:
        """A 6-digit administrative division code generalised to its prefecture (530102 → 530100)."""
        core = value.strip()
        if len(core) == 6 and core.isdigit() and core[4:] != "00":
            return value.replace(core, core[:4] + "00")
        return value


def _inside_spaces(value: str, mask) -> str:
    """`mask` applied to the value without its surrounding whitespace, which is kept."""
    core = value.strip()
    if not core:
        return value
    start = len(value) - len(value.lstrip())
    return value[:start] + mask(core) + value[start + len(core) :]


def admin_prefix(text: str) -> int:
    """Length of the leading administrative divisions (省, 市, 州, 区, 县, 旗 ...) of a Chinese address."""
    pos = 0
    while True:
        m = _ADMIN_UNIT.match(text, pos)
        if not m or m.end() - m.start() < 2:
            return pos
        pos = m.end()


_WORD = re.compile(r"[^\W\d_]+")


def _replace_words(text: str, replace) -> str:
    """Each run of non-Han letters replaced through `replace` (Han characters are handled before)."""
    return _WORD.sub(lambda m: "".join(_latin_runs(m.group(0), replace)), text)


def _latin_runs(word: str, replace):
    run = []
    for c in word:
        if names.is_cjk(c):
            if run:
                yield replace("".join(run))
                run = []
            yield c
        else:
            run.append(c)
    if run:
        yield replace("".join(run))
