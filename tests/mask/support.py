"""Masking test support: a masker with a fixed key, invented people, and the search for originals."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from urllib.parse import quote

from harness import idcard
from harness.mask.masker import Masker
from harness.mask.policy import load

ROOT = Path(__file__).resolve().parents[2]
KEY = b"test-masking-key-0123456789abcdef"
POLICY = load(ROOT / "specs" / "masking" / "default.yaml")
CHARSETS = ("utf-8", "gb18030", "utf-16-le", "utf-16-be", "big5")
"""Every charset an original could be written in: searched for in masked output."""


def masker(key: bytes = KEY, policy=POLICY) -> Masker:
    return Masker(policy, key)


def person_id(region: str = "530102", born: date = date(1985, 3, 7), seq: int = 123) -> str:
    return idcard.make(region, born, seq)


def forms(value: str) -> list[bytes]:
    """The byte forms an original may take in output: each charset, percent- and JSON-escaped."""
    out = []
    for codec in CHARSETS:
        try:
            out.append(value.encode(codec))
        except UnicodeEncodeError:
            pass
    out.append(quote(value, safe="").encode("ascii"))
    out.append(json.dumps(value, ensure_ascii=True)[1:-1].encode("ascii"))
    return [f for f in dict.fromkeys(out) if f]


def leaks(output: bytes, originals: list[str]) -> list[str]:
    """The originals found anywhere in the output bytes, in any of their forms."""
    return [value for value in originals if any(form in output for form in forms(value))]
