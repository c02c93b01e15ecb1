"""HL7 v2 character sets: MSH-18 names (table 0211 and field aliases) to Python codecs.

Precedence: an explicit setting (channel config, ``--charset``) wins over MSH-18; an empty MSH-18 means
UTF-8 (the HL7 default is ASCII, which UTF-8 decodes identically, and anything else that is not valid
UTF-8 is reported as undecodable rather than guessed at); an unknown name gives UTF-8 plus a warning the
caller records.

GBK and GB2312 declarations decode with ``gb18030``: it decodes every valid GBK/GB2312 sequence to the
same characters and re-encodes them to the same bytes (checked over the whole two-byte range in the
tests), and it also reads the four-byte sequences that senders declaring ``GBK`` put in for rare name
characters. Untouched parts of a message keep their original bytes anyway.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["Charset", "CharsetError", "resolve", "decode", "encode", "lookup", "declared_in", "TABLE_0211"]

#: HL7 table 0211 (alternate character sets) -> Python codec. None: recognised, no Python codec.
TABLE_0211: dict[str, str | None] = {
    "ASCII": "ascii",
    "8859/1": "iso8859-1",
    "8859/2": "iso8859-2",
    "8859/3": "iso8859-3",
    "8859/4": "iso8859-4",
    "8859/5": "iso8859-5",
    "8859/6": "iso8859-6",
    "8859/7": "iso8859-7",
    "8859/8": "iso8859-8",
    "8859/9": "iso8859-9",
    "8859/15": "iso8859-15",
    "ISO IR6": "ascii",
    "ISO IR14": "shift_jis",  # JIS X 0201 (Roman + half-width katakana): the single-byte part of Shift_JIS
    "ISO IR87": "iso2022_jp",  # JIS X 0208, sent with ISO 2022 escapes
    "ISO IR159": "iso2022_jp_2",  # JIS X 0212, sent with ISO 2022 escapes
    "ISO IR100": "iso8859-1",
    "ISO IR192": "utf-8",
    "GB 18030-2000": "gb18030",
    "KS X 1001": "euc_kr",
    "CNS 11643-1992": None,  # ISO-2022-CN: Python has no codec for it
    "BIG-5": "big5",
    "UNICODE": "utf-8",
    "UNICODE UTF-8": "utf-8",
    "UNICODE UTF-16": "utf-16",
    "UNICODE UTF-32": "utf-32",
}

#: Names seen in the field (normalised: upper case, '_' and '-' as written, spaces collapsed).
ALIASES: dict[str, str] = {
    "GBK": "gb18030",
    "GB2312": "gb18030",
    "GB-2312": "gb18030",
    "GB 2312": "gb18030",
    "CP936": "gb18030",
    "GB18030": "gb18030",
    "GB-18030": "gb18030",
    "GB 18030": "gb18030",
    "GB18030-2000": "gb18030",
    "GB18030-2005": "gb18030",
    "GB 18030-2005": "gb18030",
    "UTF-8": "utf-8",
    "UTF8": "utf-8",
    "UNICODE UTF8": "utf-8",
    "UNICODE-UTF-8": "utf-8",
    "ISO_IR 192": "utf-8",
    "ISO_IR 100": "iso8859-1",
    "ISO-8859-1": "iso8859-1",
    "ISO8859-1": "iso8859-1",
    "LATIN1": "iso8859-1",
    "US-ASCII": "ascii",
    "BIG5": "big5",
    "EUC-KR": "euc_kr",
    "SHIFT_JIS": "shift_jis",
    "UTF-16": "utf-16",
    "UTF-32": "utf-32",
}

DEFAULT_CODEC = "utf-8"
FALLBACK_CODEC = "gb18030"
"""What `auto` reads a message as when nothing declares its charset and its bytes are not UTF-8: the
most common Chinese HIS message is GBK without MSH-18 (GB18030 is GBK's superset)."""


class CharsetError(ValueError):
    """Bytes that the codec cannot decode (or text it cannot encode), with where."""

    def __init__(self, message: str, *, offset: int, bad: bytes | str, codec: str) -> None:
        super().__init__(message)
        self.offset = offset
        self.bad = bad
        self.codec = codec


@dataclass(frozen=True, slots=True)
class Charset:
    """A resolved charset: the Python codec, the name it came from, and any warning to record."""

    codec: str
    declared: str | None = None
    warning: str | None = None


def _normalise(name: str) -> str:
    return " ".join(name.strip().upper().split())


def lookup(name: str) -> str | None:
    """The Python codec for a table 0211 name, a field alias or a Python codec name; None if unknown."""
    key = _normalise(name)
    if key in TABLE_0211:
        return TABLE_0211[key]
    if key in ALIASES:
        return ALIASES[key]
    try:
        info = codecs.lookup(name.strip())
    except (LookupError, ValueError):  # ValueError: a NUL byte in the name
        return None
    if info.name in ("gbk", "gb2312"):
        return "gb18030"
    return info.name


@lru_cache(maxsize=256)
def resolve(
    msh18: str | None,
    explicit: str | None = None,
    *,
    data: bytes | None = None,
    fallback: str = FALLBACK_CODEC,
) -> Charset:
    """Choose the codec: explicit setting, else MSH-18, else UTF-8 — or, when `data` is given, is not
    valid UTF-8 and is valid in `fallback` (GB18030 by default), that. Bytes valid in neither stay UTF-8
    (their bad bytes are reported where they are): a guess must not move a delimiter. Never raises."""
    for source, name in (("explicit charset", explicit), ("MSH-18", msh18)):
        if name is None or not name.strip():
            continue
        key = _normalise(name)
        if key in TABLE_0211:
            codec = TABLE_0211[key]
            if codec is None:
                return Charset(
                    DEFAULT_CODEC,
                    name,
                    f"{source} {name!r} has no Python codec here; decoding as {DEFAULT_CODEC}",
                )
            return Charset(codec, name)
        codec = lookup(name)
        if codec is not None:
            return Charset(codec, name)
        warning = f"{source} {name!r} is not a known character set; decoding as {DEFAULT_CODEC}"
        return Charset(DEFAULT_CODEC, name, warning)
    if data is not None and not _decodes(data, DEFAULT_CODEC):
        codec = lookup(fallback) or FALLBACK_CODEC
        if _decodes(data, codec):
            return Charset(codec)
    return Charset(DEFAULT_CODEC)


def _decodes(data: bytes, codec: str) -> bool:
    if data.isascii():
        return True
    try:
        data.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return False
    return True


def decode(data: bytes, codec: str) -> str:
    """Decode strictly; an undecodable byte raises CharsetError with its offset, never a replacement."""
    try:
        return data.decode(codec)
    except UnicodeDecodeError as exc:
        bad = data[exc.start : exc.end]
        raise CharsetError(
            f"byte{'s' if len(bad) > 1 else ''} {bad.hex(' ')} at offset {exc.start} cannot be decoded as "
            f"{codec} ({exc.reason})",
            offset=exc.start,
            bad=bad,
            codec=codec,
        ) from None
    except LookupError:
        raise CharsetError(f"unknown codec {codec!r}", offset=0, bad=b"", codec=codec) from None


def encode(text: str, codec: str) -> bytes:
    """Encode strictly; a character the codec lacks raises CharsetError with its (character) offset."""
    try:
        return text.encode(codec)
    except UnicodeEncodeError as exc:
        bad = text[exc.start : exc.end]
        raise CharsetError(
            f"character {bad!r} at position {exc.start} cannot be encoded as {codec}",
            offset=exc.start,
            bad=bad,
            codec=codec,
        ) from None


def declared_in(payload: bytes) -> str | None:
    """MSH-18's first repetition read from raw bytes, before any decoding (MSH-18 values are ASCII).

    MSH-3..17 may hold non-ASCII text whose GBK trail bytes equal the field separator, so a non-ASCII
    MSH line is split after a trial decode (UTF-8, then GB18030) rather than byte-wise.
    """
    start = payload.find(b"MSH")
    if start < 0 or len(payload) < start + 4:
        return None
    sep = payload[start + 3 : start + 4]
    if sep in (b"\r", b"\n"):
        return None
    end = len(payload)
    for term in (b"\r", b"\n"):
        pos = payload.find(term, start)
        if 0 <= pos < end:
            end = pos
    line = payload[start:end]
    if line.isascii():
        fields = line.decode("ascii").split(sep.decode("ascii"))
    else:
        fields = None
        for trial in ("utf-8", "gb18030"):
            try:
                text = line.decode(trial)
            except UnicodeDecodeError:
                continue
            fields = text.split(text[3])
            break
        if fields is None:
            fields = line.decode("latin-1").split(sep.decode("latin-1"))
    if len(fields) <= 17:
        return None
    value = fields[17]
    enc = fields[1]
    for delim in enc[:2]:  # component, repetition
        value = value.split(delim, 1)[0]
    value = value.strip()
    return value or None
