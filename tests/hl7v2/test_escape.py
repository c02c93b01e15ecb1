"""Escape sequences: delimiters, hex data, line breaks; verbatim for what text cannot hold."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.hl7v2.escape import DEFAULT, Delimiters, escape, unescape


@pytest.mark.parametrize(
    ("encoded", "text"),
    [
        ("a\\F\\b", "a|b"),
        ("a\\S\\b", "a^b"),
        ("a\\T\\b", "a&b"),
        ("a\\R\\b", "a~b"),
        ("a\\E\\b", "a\\b"),
        ("\\X41\\", "A"),
        ("\\X0D0A\\", "\r\n"),
        ("\\XE4BA85\\", "亅"),
        ("a\\.br\\b", "a\nb"),
        ("\\H\\bold\\N\\", "\\H\\bold\\N\\"),
        ("\\.sp2\\", "\\.sp2\\"),
        ("\\Zlocal\\", "\\Zlocal\\"),
        ("\\X4\\", "\\X4\\"),  # odd hex: kept
        ("\\XZZ\\", "\\XZZ\\"),
        ("dangling\\F", "dangling\\F"),
        ("\\P\\", "\\P\\"),  # no truncation character in a 4-character MSH-2
        ("", ""),
    ],
)
def test_unescape(encoded: str, text: str) -> None:
    assert unescape(encoded) == text


def test_hex_in_message_charset() -> None:
    assert unescape("\\X817C\\", DEFAULT, "gb18030") == "亅"


def test_truncation_character() -> None:
    d = Delimiters.from_msh("|", "^~\\&#")
    assert d.truncation == "#"
    assert escape("a#b", d) == "a\\P\\b"
    assert unescape("a\\P\\b", d) == "a#b"


def test_escape() -> None:
    assert escape("a|b^c~d\\e&f\rg\nh") == "a\\F\\b\\S\\c\\R\\d\\E\\e\\T\\f\\X0D\\g\\X0A\\h"
    assert escape("plain 张三") == "plain 张三"


def test_no_escape_character() -> None:
    d = Delimiters("|", "^", "~", "", "&")
    assert escape("plain", d) == "plain"
    with pytest.raises(ValueError, match="no escape character"):
        escape("a|b", d)
    assert unescape("a\\F\\b", d) == "a\\F\\b"


_DELIMS = st.permutations(list("|^~\\&#!@$%")).map(lambda c: Delimiters.from_msh(c[0], "".join(c[1:6])))


@given(st.text(st.characters(blacklist_categories=("Cs",))), _DELIMS)
def test_unescape_inverts_escape(text: str, d: Delimiters) -> None:
    encoded = escape(text, d)
    for special in (d.field, d.component, d.repetition, d.subcomponent, d.truncation, "\r", "\n"):
        assert special not in encoded
    assert unescape(encoded, d) == text
