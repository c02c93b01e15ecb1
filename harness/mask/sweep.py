"""The residual sweep: originals the policy's elements held, replaced wherever else they appear.

The policy names where identifiers live (PID-3, certno, Patient.identifier), but the same values turn
up elsewhere in the same exchange: an NTE comment naming the patient, an ERR-8 or `err_msg` quoting the
身份证 that was refused, a FHIR search URL, a `Location` header, a bundle's `ifNoneExist`. Every value the
policy masked in one exchange is recorded here with its pseudonym, and the sweep replaces it in all the
other text of that exchange, in the encodings that text uses (JSON strings and XML text are swept once
decoded; an HTTP head as its bytes and percent-encoded).

Short values are not swept (a one-character given name, a 3-digit number): they occur by chance in
unrelated text. Values made of letters and digits are matched as whole words only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from urllib.parse import quote

MIN_HAN = 2
"""Shortest Han string swept (a two-character name)."""
MIN_OTHER = 5
"""Shortest other value swept (record numbers, phone numbers, words of an address)."""

_WORDISH = re.compile(r"^[0-9A-Za-z]")
BEFORE = r"(?:(?<![0-9A-Za-z])|(?<=%[0-9A-Fa-f]{2}))"
"""Where a word may start: after a non-alphanumeric character or a percent-encoded one (`%7C` in a
URL is a `|`, not the letters 7 and C)."""


def sweepable(original: str) -> bool:
    text = original.strip()
    if not text:
        return False
    if any(0x3400 <= ord(c) <= 0x9FFF or ord(c) >= 0x20000 for c in text):
        return len(text) >= MIN_HAN
    return len(text) >= MIN_OTHER


class Replacements:
    """Original → pseudonym pairs of one exchange (or file), and the sweep that applies them.

    `scrub`, when set, runs after the sweep: it finds identifiers by their shape (a 身份证 with a valid
    check digit, a mobile number) that no policy element held, and masks them too.
    """

    __slots__ = ("pairs", "produced", "scrub", "_compiled")

    def __init__(self, scrub: Callable[[str], str] | None = None) -> None:
        self.pairs: dict[str, str] = {}
        self.produced: set[str] = set()
        """Every pseudonym handed out in this unit: the scrub leaves them alone."""
        self.scrub = scrub
        self._compiled: dict[str, tuple[re.Pattern[str], dict[str, str]] | None] = {}

    def add(self, original: str, masked: str) -> None:
        original, masked = original.strip(), masked.strip()
        if original == masked:
            return
        self.produced.add(masked)
        if sweepable(original) and original not in self.pairs:
            self.pairs[original] = masked
            self._compiled.clear()

    def __bool__(self) -> bool:
        return bool(self.pairs) or self.scrub is not None

    def _pattern(self, encoding: str) -> tuple[re.Pattern[str], dict[str, str]] | None:
        if encoding in self._compiled:
            return self._compiled[encoding]
        encode = ENCODINGS[encoding]
        table: dict[str, str] = {}
        for original, masked in self.pairs.items():
            for form in _forms(original, masked, encode):
                table.setdefault(*form)
        if not table:
            self._compiled[encoding] = None
            return None
        alternatives = []
        for text in sorted(table, key=len, reverse=True):  # longest first: a full name before its given name
            piece = re.escape(text)
            if _WORDISH.match(text):
                piece = BEFORE + piece
            if text[-1:].isascii() and text[-1:].isalnum():
                piece += r"(?![0-9A-Za-z])"
            alternatives.append(piece)
        compiled = (re.compile("|".join(alternatives)), table)
        self._compiled[encoding] = compiled
        return compiled

    def sweep(self, text: str, encoding: str = "plain") -> str:
        """`text` with every recorded original (in the given encoding) replaced by its pseudonym."""
        if not text:
            return text
        compiled = self._pattern(encoding) if self.pairs else None
        if compiled is not None:
            pattern, table = compiled
            text = pattern.sub(lambda m: table[m.group(0)], text)
        return self.scrub(text) if self.scrub is not None else text

    def sweep_value(self, value):
        """Strings anywhere inside a JSON-like value (dicts, lists) swept; other values as they are."""
        if isinstance(value, str):
            return self.sweep(value)
        if isinstance(value, dict):
            return {k: self.sweep_value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.sweep_value(v) for v in value]
        return value


def _forms(original: str, masked: str, encode: Callable[[str], Iterable[str]]):
    for a, b in zip(encode(original), encode(masked), strict=True):
        if a != b:
            yield a, b


def _url_forms(text: str) -> list[str]:
    upper = quote(text, safe="")
    return [
        text,
        upper,
        upper.replace("%", "%25"),
        _lower_hex(upper),
        quote(text, safe="").replace("%20", "+"),
    ]


def _lower_hex(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), text)


def _head_forms(text: str) -> list[str]:
    """An HTTP head is read as latin-1: UTF-8 text in it shows as its bytes; URLs percent-encode."""
    raw = text.encode("utf-8", "surrogatepass").decode("latin-1")
    return [raw, *_url_forms(text)[1:]]


ENCODINGS: dict[str, Callable[[str], list[str]]] = {
    "plain": lambda text: [text],
    "head": _head_forms,
}
