"""The masker: a policy and a key, applied to content of any kind (sans-IO).

Masking happens in two steps per unit (one exchange, one file): each kind's module replaces the
elements its policy section names, recording every original with its pseudonym in the unit's
`Replacements`; then `render` sweeps those originals out of all the unit's other text (see sweep.py) and
encodes the result in the content's own charset. `Masker.content` does both for one piece of content:
the one call reports and exports need ("text or bytes in, masked out").
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence
from datetime import date
from typing import Protocol

from harness import idcard
from harness.mask.error import MaskError  # noqa: F401 - its home for callers of the masker
from harness.mask.policy import Policy, Rule
from harness.mask.pseudonym import MOBILE_PREFIXES, Pseudonyms
from harness.mask.sweep import BEFORE, Replacements

_FAR_FUTURE = date(9999, 12, 31)
_IDCARD_SHAPE = re.compile(BEFORE + r"\d{17}[\dXx](?![0-9A-Za-z])")
_MOBILE_SHAPE = re.compile(BEFORE + r"1[3-9]\d{9}(?![0-9A-Za-z])")


class Masked(Protocol):
    """Content with the policy's elements replaced, ready to be swept and encoded."""

    def render(self, replacements: Replacements) -> bytes | str: ...


class Pass:
    """One unit of masking (an exchange, a file): its replacements and the current patient."""

    __slots__ = ("masker", "pseudonyms", "replacements", "patient")

    def __init__(self, masker: Masker) -> None:
        self.masker = masker
        self.pseudonyms = masker.pseudonyms
        self.replacements = Replacements(self.scrub)
        self.patient: str | None = None
        """Whose dates are being moved: the 身份证 of the patient the element belongs to when known."""

    def value(self, how: str, value: str, *, precision: str | None = None) -> str:
        """One scalar value masked as `how`; the original is recorded for the sweep."""
        if not value or how == "keep":
            return value
        p = self.pseudonyms
        if how == "id":
            out = p.identifier(value)
        elif how == "phone":
            out = p.phone(value)
        elif how == "email":
            out = p.email(value)
        elif how == "name":
            return self.name([value])[0]
        elif how == "address":
            out = p.address(value)
        elif how == "text":
            out = p.text(value)
        elif how == "region":
            return p.region(value)
        elif how == "redact":
            out = ""
        elif how == "date":
            moved = p.date(value, self.patient)
            if moved is None:  # not a date after all: its digits still go
                out = p.text(value)
            else:
                return _coarsen(moved, precision)
        else:  # pragma: no cover - the policy loader refuses other values
            raise ValueError(f"unknown masking {how!r}")
        self.replacements.add(value, out)
        return out

    def name(self, parts: Sequence[str]) -> list[str]:
        """One person's name from its parts (family, given, ...), masked together."""
        if not any(parts):
            return list(parts)
        out = self.pseudonyms.name(list(parts))
        self.replacements.add("".join(parts), "".join(out))
        for original, masked in zip(parts, out, strict=True):
            self.replacements.add(original, masked)
            for word, new in zip(original.split(), masked.split(), strict=False):
                self.replacements.add(word, new)
        return out

    def scrub(self, text: str) -> str:
        """身份证 numbers (valid check digit) and mobile numbers that no policy element held, masked
        wherever they appear in text (free-text comments, error messages, URLs)."""
        if not any(c.isdigit() for c in text):
            return text
        produced = self.replacements.produced

        def idcard_sub(m: re.Match[str]) -> str:
            value = m.group(0)
            if value in produced or idcard.problem(value, today=_FAR_FUTURE) is not None:
                return value
            return self.value("id", value)

        def mobile_sub(m: re.Match[str]) -> str:
            value = m.group(0)
            if value in produced or value[:3] not in MOBILE_PREFIXES:
                return value
            return self.value("phone", value)

        return _MOBILE_SHAPE.sub(mobile_sub, _IDCARD_SHAPE.sub(idcard_sub, text))

    def choose_patient(self, ids: Sequence[str], names: Sequence[str] = ()) -> str | None:
        """The key whose offset moves this patient's dates: the 身份证 when there is one (so every kind
        that carries it moves the dates alike, and the birth date in the masked 身份证 agrees), else the
        first identifier, else the name."""
        for value in ids:
            text = (value or "").strip()
            if len(text) == 18 and idcard.problem(text, today=_FAR_FUTURE) is None:
                return text.upper()
        for value in (*ids, *names):
            if value and value.strip():
                return value.strip()
        return None


class Masker:
    """A policy with a key: masks content, exchanges and stores consistently."""

    def __init__(self, policy: Policy, key: bytes) -> None:
        self.policy = policy
        self.pseudonyms = Pseudonyms(
            key, shift_dates=policy.shift_dates, max_shift_days=policy.max_shift_days
        )
        self.key_id = hmac.new(key, b"harness mask key id", hashlib.sha256).hexdigest()[:12]
        """Names the key without revealing it: two masked copies with the same key id can be joined."""

    def new_pass(self) -> Pass:
        return Pass(self)

    def rules(self, kind: str) -> tuple[Rule, ...]:
        return self.policy.for_kind(kind)

    def structure(self, data: bytes | str, kind: str, pass_: Pass, *, charset: str | None = None) -> Masked:
        """Replace the policy's elements of one piece of content (first step); raises MaskError."""
        from harness.mask import content

        return content.mask(self, data, kind, pass_, charset=charset)

    def content(self, data: bytes | str, kind: str, *, charset: str | None = None) -> bytes | str:
        """One piece of content masked: an HL7 v2 message (bytes in its charset, or text), a FHIR, medins or
        CDC JSON document, a SOAP or HL7 v3 XML document, or an HTTP request carrying one of those
        (kind `http:fhir`, ...). Bytes give bytes and text gives text. Raises MaskError when the content
        cannot be read, so nothing unmasked is ever returned."""
        pass_ = self.new_pass()
        return self.structure(data, kind, pass_, charset=charset).render(pass_.replacements)


def _coarsen(value: str, precision: str | None) -> str:
    """A date cut to year or year-month (FHIR's partial dates), its format otherwise kept."""
    if precision in (None, "day"):
        return value
    digits = 4 if precision == "year" else 6
    seen = 0
    for i, c in enumerate(value):
        if c.isdigit():
            seen += 1
            if seen == digits:
                return value[: i + 1]
    return value
