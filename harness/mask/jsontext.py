"""JSON edited in place: scalar values replaced by path, every other byte of the document kept.

Re-serialising a parsed document would change what nobody asked to change: whitespace, key order of
duplicate keys, `\\u` escapes, and numbers (`79.10` would come back as `79.1`, which a medical-insurance
centre reads as a different amount). So the document is parsed by `json` (the judge of validity), its
scalar tokens are located by a scanner that only ever sees valid JSON, and the masked values are spliced
into the original text. The result is valid JSON by construction and is parsed again to prove it.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from typing import Any

from harness.mask.error import MaskError
from harness.mask.sweep import Replacements

Path = tuple[str | int, ...]
MAX_DEPTH = 200
"""Nesting deeper than this is refused (the standard library's parser has a similar limit)."""

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
_LITERAL = re.compile(r"true|false|null")
_WS = re.compile(r"[ \t\r\n]*")


def decode_bytes(data: bytes, charset: str | None = None) -> tuple[str, str]:
    """The text of a JSON body and the codec to write it back with: the declared charset, else UTF-8
    (with or without BOM), else UTF-16/32 by BOM, else GB18030 (HIS systems that send GBK JSON)."""
    candidates = []
    if charset:
        candidates.append(charset)
    if data.startswith(codecs.BOM_UTF8):
        candidates.append("utf-8-sig")
    elif data.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        candidates.append("utf-32")
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        candidates.append("utf-16")
    candidates += ["utf-8", "gb18030"]
    for codec in candidates:
        try:
            return data.decode(codec), codec
        except (UnicodeDecodeError, LookupError):
            continue
    raise MaskError("body is neither UTF-8 nor GB18030 text")


class Document:
    """One JSON document: the parsed value, where each scalar sits in the text, and pending edits."""

    def __init__(self, text: str) -> None:
        try:
            self.data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise MaskError(f"not valid JSON: {exc}") from None
        self.text = text
        self.spans: dict[Path, list[tuple[int, int]]] = {}
        try:
            end = _scan(text, _skip(text, 0), (), self.spans, 0)
        except RecursionError:  # pragma: no cover - MAX_DEPTH is far below Python's limit
            raise MaskError("JSON nested too deeply") from None
        if _skip(text, end) != len(text):  # pragma: no cover - json.loads refused that already
            raise MaskError("trailing data after the JSON document")
        self.edits: dict[Path, Any] = {}

    def leaves(self) -> Iterator[tuple[Path, Any]]:
        """Every scalar value with its path (object keys and list indices)."""
        yield from walk(self.data, ())

    def set(self, path: Path, value: Any) -> None:
        if path not in self.spans:
            raise KeyError(path)
        self.edits[path] = value

    def render(self, replacements: Replacements) -> str:
        """The text with the edits spliced in and every other string swept of recorded originals."""
        changes: list[tuple[int, int, str]] = []
        for path, spans in self.spans.items():
            for start, end in spans:
                token = self.text[start:end]
                if path in self.edits:
                    new = _token(self.edits[path], token)
                elif token.startswith('"') and replacements:
                    value = json.loads(token)
                    swept = replacements.sweep(value)
                    if swept == value:
                        continue
                    new = _token(swept, token)
                else:
                    continue
                if new != token:
                    changes.append((start, end, new))
        if not changes:
            return self.text
        changes.sort()
        out, pos = [], 0
        for start, end, new in changes:
            out.append(self.text[pos:start])
            out.append(new)
            pos = end
        out.append(self.text[pos:])
        text = "".join(out)
        json.loads(text)  # spliced tokens are JSON by construction; prove it
        return text


def _token(value: Any, original: str) -> str:
    """A JSON token for value in the style of the token it replaces (a number stays a number when the
    masked value is still one; \\u escapes are kept when the original used them)."""
    if original[:1] != '"' and isinstance(value, str) and _NUMBER.fullmatch(value) and value == value.strip():
        return value
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=original.isascii() and "\\u" in original)
    return json.dumps(value, ensure_ascii=False)


def walk(value: Any, path: Path = ()) -> Iterator[tuple[Path, Any]]:
    """Every scalar inside a parsed JSON value, with its path below `path`."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from walk(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from walk(item, (*path, i))
    else:
        yield path, value


def _skip(text: str, pos: int) -> int:
    return _WS.match(text, pos).end()


def _scan(text: str, pos: int, path: Path, spans: dict, depth: int) -> int:
    """Record the span of every scalar under `path` starting at pos; returns the end of the value."""
    if depth > MAX_DEPTH:
        raise MaskError(f"JSON nested deeper than {MAX_DEPTH} levels")
    c = text[pos]
    if c == "{":
        pos = _skip(text, pos + 1)
        if text[pos] == "}":
            return pos + 1
        while True:
            m = _STRING.match(text, pos)
            key = json.loads(m.group(0))
            pos = _skip(text, m.end())
            pos = _skip(text, pos + 1)  # the colon
            pos = _skip(text, _scan(text, pos, (*path, key), spans, depth + 1))
            if text[pos] == ",":
                pos = _skip(text, pos + 1)
                continue
            return pos + 1  # the closing brace
    if c == "[":
        pos = _skip(text, pos + 1)
        if text[pos] == "]":
            return pos + 1
        index = 0
        while True:
            pos = _skip(text, _scan(text, pos, (*path, index), spans, depth + 1))
            index += 1
            if text[pos] == ",":
                pos = _skip(text, pos + 1)
                continue
            return pos + 1
    m = (_STRING if c == '"' else _LITERAL if c in "tfn" else _NUMBER).match(text, pos)
    spans.setdefault(path, []).append((m.start(), m.end()))
    return m.end()
