"""The lossless HL7 v2 message model: terse-path get/set, byte-identical re-encode.

Bytes are decoded with the message's charset before anything is split (GBK trail bytes can equal
``|``, ``\\``, ``^`` and ``~``). Segments are split on CR, LF or CRLF, each keeping its own terminator;
fields are split only when a segment is first read, and components only along the path asked for.
An untouched message encodes to the very bytes it was parsed from; a touched one re-encodes only the
touched segments and copies every other segment's original bytes.

Paths (1-based, HL7 numbering): ``PID-5``, ``PID-5.1``, ``PID-5.1.2``, ``OBX[2]-5``, ``PID-3[2].1``.
``MSH-1`` is the field separator and ``MSH-2`` the encoding characters, as in the standard. A path
without a repetition means the first one (``PID-3`` is ``PID-3[1]``); a path without a component
means the whole repetition. ``get()`` returns that element with escape sequences resolved (for a
composite element its separators appear as in the message: ``get("MSH-9") == "ADT^A01^ADT_A01"``);
``set()`` stores the value as one leaf, escaping every delimiter in it; ``get_raw()``/``set_raw()``
work on the encoded text.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from dataclasses import dataclass

from harness.hl7v2.charset import Charset, CharsetError, declared_in, decode, encode, resolve
from harness.hl7v2.escape import Delimiters, escape, unescape

__all__ = ["HL7ParseError", "Message", "Path", "parse_path", "check_encoding_characters"]

_TERM = re.compile(r"(\r\n|\r|\n)")
_TERM_B = re.compile(rb"(\r\n|\r|\n)")
_PATH = re.compile(
    r"^\s*([A-Za-z][A-Za-z0-9]{2})(?:\[(\d+)\])?"
    r"(?:-(\d+)(?:\[(\d+)\])?(?:[.-](\d+)(?:[.-](\d+))?)?)?\s*$"
)
_WIDE_OR_STATEFUL = ("utf-16", "utf-32", "utf_16", "utf_32", "iso2022", "utf-7", "utf_7", "hz")


class HL7ParseError(ValueError):
    """A message that cannot be read: what is wrong and where (byte offset when parsed from bytes)."""

    def __init__(self, what: str, *, offset: int | None = None, segment: str | None = None) -> None:
        self.what = what
        self.offset = offset
        self.segment = segment
        where = []
        if segment is not None:
            where.append(f"segment {segment}")
        if offset is not None:
            where.append(f"offset {offset}")
        self.location = ", ".join(where) or None
        super().__init__(f"{what} (at {self.location})" if self.location else what)


@dataclass(frozen=True, slots=True)
class Path:
    """A parsed terse path; numbers are 1-based, None where the path stops."""

    segment: str
    segment_index: int = 1
    field: int | None = None
    repetition: int | None = None
    component: int | None = None
    subcomponent: int | None = None

    def __str__(self) -> str:
        text = self.segment + (f"[{self.segment_index}]" if self.segment_index != 1 else "")
        if self.field is not None:
            text += f"-{self.field}" + (f"[{self.repetition}]" if self.repetition else "")
            if self.component is not None:
                text += f".{self.component}"
                if self.subcomponent is not None:
                    text += f".{self.subcomponent}"
        return text


def parse_path(path: str) -> Path:
    """Parse ``SEG[n]-F[r].C.S``; raises ValueError naming the bad path."""
    m = _PATH.match(path)
    if not m:
        raise ValueError(f"bad HL7 path {path!r}: expected e.g. PID-5.1, OBX[2]-5, PID-3[2].1")
    seg, segi, field, rep, comp, sub = m.groups()
    nums = [int(x) if x is not None else None for x in (segi, field, rep, comp, sub)]
    if any(n == 0 for n in nums):
        raise ValueError(f"bad HL7 path {path!r}: positions are 1-based")
    return Path(seg.upper(), nums[0] or 1, nums[1], nums[2], nums[3], nums[4])


def check_encoding_characters(fsep: str, enc: str, offset: int) -> None:
    """Raise HL7ParseError unless MSH-1/MSH-2 give distinct, usable delimiters (4 or 5 in MSH-2)."""
    if not enc:
        raise HL7ParseError("MSH-2 (encoding characters) is missing", offset=offset, segment="MSH")
    if len(enc) < 4:
        raise HL7ParseError(
            f"MSH-2 {enc!r} is too short: 4 encoding characters (component, repetition, escape, "
            "subcomponent) are required",
            offset=offset,
            segment="MSH",
        )
    if len(enc) > 5:
        raise HL7ParseError(
            f"MSH-2 {enc[:12]!r} is longer than 5 characters (is the field separator after it missing?)",
            offset=offset,
            segment="MSH",
        )
    chars = fsep + enc
    if len(set(chars)) != len(chars):
        raise HL7ParseError(
            f"MSH-1/MSH-2 {chars!r} repeat a delimiter: each must be distinct", offset=offset, segment="MSH"
        )
    for c in chars:
        if c.isalnum() or c.isspace():
            raise HL7ParseError(
                f"MSH-1/MSH-2 {chars!r} contain {c!r}: delimiters cannot be letters, digits or whitespace",
                offset=offset,
                segment="MSH",
            )


def _is_wide(codec: str) -> bool:
    try:
        name = codecs.lookup(codec).name
    except LookupError:
        return False
    return name.startswith(_WIDE_OR_STATEFUL)


class Message:
    """One HL7 v2 message, parsed lazily and re-encoded losslessly."""

    __slots__ = (
        "delimiters",
        "charset",
        "_raw",
        "_prefix",
        "_texts",
        "_terms",
        "_fields",
        "_dirty",
        "_orig_n",
    )

    def __init__(self) -> None:  # use Message.parse
        self.delimiters: Delimiters = Delimiters()
        self.charset: Charset = Charset("utf-8")
        self._raw: bytes | None = None
        self._prefix = ""
        self._texts: list[str] = []
        self._terms: list[str] = []
        self._fields: list[list[str] | None] = []
        self._dirty: set[int] = set()
        self._orig_n = 0

    # -- parsing -----------------------------------------------------------------------------------
    @classmethod
    def parse(cls, data: bytes | str, charset: str | None = None) -> Message:
        """Parse bytes (decoded with ``charset``, else MSH-18, else UTF-8 when they are valid UTF-8, else
        GB18030) or already-decoded text."""
        self = cls()
        cs: Charset | None = None
        if isinstance(data, bytes | bytearray | memoryview):
            raw = bytes(data)
            cs = resolve(declared_in(raw), charset, data=raw)
            if not _is_wide(cs.codec):
                nul = raw.find(b"\x00")
                if nul >= 0:
                    raise HL7ParseError("NUL byte in message", offset=nul)
            try:
                text = decode(raw, cs.codec)
            except CharsetError as exc:
                raise HL7ParseError(str(exc), offset=exc.offset) from exc
            self._raw = raw
        elif isinstance(data, str):
            text = data
        else:
            raise TypeError(f"Message.parse takes bytes or str, not {type(data).__name__}")
        nul = text.find("\x00")
        if nul >= 0:
            raise HL7ParseError("NUL character in message", offset=nul)
        prefix = "\ufeff" if text.startswith("\ufeff") else ""
        body = text[1:] if prefix else text
        # offsets in errors count bytes when parsing bytes: the BOM is 3 of them in UTF-8
        plen = len(prefix)
        if prefix and self._raw is not None:
            plen = len(encode(prefix, cs.codec)) if not _is_wide(cs.codec) else 0
        if not body.startswith("MSH"):
            if not body.strip():
                raise HL7ParseError("empty message: no MSH segment", offset=0)
            pos = body.find("MSH")
            if pos > 0:
                pos += len(prefix)
                if self._raw is not None and not _is_wide(cs.codec):
                    pos = self._raw.find(b"MSH")
            found = f"; an MSH appears at offset {pos}" if pos > 0 else ""
            raise HL7ParseError(f"no MSH segment at start of message (starts {body[:16]!r}{found})", offset=0)
        if len(body) < 4 or body[3] in "\r\n":
            raise HL7ParseError("MSH-1 (field separator) is missing", offset=plen + 3, segment="MSH")
        fsep = body[3]
        end = len(body)
        for stop in (fsep, "\r", "\n"):
            p = body.find(stop, 4)
            if 0 <= p < end:
                end = p
        enc = body[4:end]
        check_encoding_characters(fsep, enc, plen + 4)
        self.delimiters = Delimiters.from_msh(fsep, enc)
        parts = _TERM.split(body)
        texts = parts[0::2]
        terms = parts[1::2]
        if texts[-1] == "" and terms:
            texts.pop()
        else:
            terms.append("")
        self._prefix = prefix
        self._texts = texts
        self._terms = terms
        self._fields = [None] * len(texts)
        self._orig_n = len(texts)
        if cs is None:
            msh = texts[0].split(fsep)
            declared = msh[17].split(enc[1])[0].split(enc[0])[0].strip() if len(msh) > 17 else None
            cs = resolve(declared or None, charset)
        self.charset = cs
        return self

    # -- reading -----------------------------------------------------------------------------------
    @property
    def codec(self) -> str:
        return self.charset.codec

    @property
    def touched(self) -> bool:
        return bool(self._dirty)

    @property
    def segment_ids(self) -> list[str]:
        """The segment ids in order (blank lines skipped)."""
        return [t[:3] for t in self._texts if t]

    def count(self, segment: str) -> int:
        return sum(1 for _ in self._indices(segment.upper()))

    def _indices(self, name: str) -> Iterator[int]:
        fsep = self.delimiters.field
        for i, t in enumerate(self._texts):
            if t.startswith(name) and (len(t) == 3 or t[3] == fsep):
                yield i

    def _find(self, name: str, nth: int) -> int | None:
        for k, i in enumerate(self._indices(name), 1):
            if k == nth:
                return i
        return None

    def _seg_fields(self, i: int) -> list[str]:
        f = self._fields[i]
        if f is None:
            f = self._fields[i] = self._texts[i].split(self.delimiters.field)
        return f

    @staticmethod
    def _field_index(p: Path) -> int:
        if p.field is None:
            raise ValueError(f"path {p} names no field")
        return p.field - 1 if p.segment == "MSH" else p.field

    def get_raw(self, path: str | Path) -> str | None:
        """The encoded text at path (escape sequences intact), or None when absent."""
        p = path if isinstance(path, Path) else parse_path(path)
        idx = self._field_index(p)
        i = self._find(p.segment, p.segment_index)
        if i is None:
            return None
        d = self.delimiters
        if p.segment == "MSH" and p.field in (1, 2):
            if (p.repetition or 1) > 1 or (p.component or 1) > 1 or (p.subcomponent or 1) > 1:
                return None
            return d.field if p.field == 1 else d.encoding_characters
        fields = self._seg_fields(i)
        if idx >= len(fields):
            return None
        value = fields[idx]
        r = p.repetition or 1
        if r > 1 or d.repetition in value:
            reps = value.split(d.repetition)
            if r > len(reps):
                return None
            value = reps[r - 1]
        if p.component is None:
            return value
        comps = value.split(d.component)
        if p.component > len(comps):
            return None
        value = comps[p.component - 1]
        if p.subcomponent is None:
            return value
        subs = value.split(d.subcomponent) if d.subcomponent else [value]
        if p.subcomponent > len(subs):
            return None
        return subs[p.subcomponent - 1]

    def get(self, path: str | Path) -> str | None:
        """The value at path with escape sequences resolved, or None when absent."""
        p = path if isinstance(path, Path) else parse_path(path)
        value = self.get_raw(p)
        if value is None or (p.segment == "MSH" and p.field in (1, 2)):
            return value
        return unescape(value, self.delimiters, self.charset.codec)

    # -- writing -----------------------------------------------------------------------------------
    def set(self, path: str | Path, value: str) -> None:
        """Store value as one leaf at path (delimiters in it escaped), extending the message as needed."""
        self.set_raw(path, escape(value, self.delimiters))

    def set_raw(self, path: str | Path, encoded: str) -> None:
        """Store already-encoded text at path; it may hold the delimiters below the addressed level."""
        p = path if isinstance(path, Path) else parse_path(path)
        idx = self._field_index(p)
        if p.segment == "MSH" and p.field in (1, 2):
            raise ValueError("changing MSH-1/MSH-2 (the delimiters) is not supported")
        if "\r" in encoded or "\n" in encoded:
            raise ValueError(f"value for {p} contains CR or LF, which would split the segment")
        try:
            encode(encoded, self.charset.codec)
        except CharsetError as exc:
            msg = f"value for {p}: {exc}"
            raise CharsetError(msg, offset=exc.offset, bad=exc.bad, codec=exc.codec) from None
        d = self.delimiters
        if p.subcomponent is not None and not d.subcomponent:
            raise ValueError(f"path {p}: this message has no subcomponent separator")
        i = self._find(p.segment, p.segment_index)
        while i is None:
            self._append_segment(p.segment)
            i = self._find(p.segment, p.segment_index)
        fields = list(self._seg_fields(i))
        if idx >= len(fields):
            fields.extend([""] * (idx + 1 - len(fields)))
        reps = fields[idx].split(d.repetition)
        r = p.repetition or 1
        if r > len(reps):
            reps.extend([""] * (r - len(reps)))
        if p.component is None:
            reps[r - 1] = encoded
        else:
            comps = reps[r - 1].split(d.component)
            if p.component > len(comps):
                comps.extend([""] * (p.component - len(comps)))
            if p.subcomponent is None:
                comps[p.component - 1] = encoded
            else:
                subs = comps[p.component - 1].split(d.subcomponent)
                if p.subcomponent > len(subs):
                    subs.extend([""] * (p.subcomponent - len(subs)))
                subs[p.subcomponent - 1] = encoded
                comps[p.component - 1] = d.subcomponent.join(subs)
            reps[r - 1] = d.component.join(comps)
        fields[idx] = d.repetition.join(reps)
        self._fields[i] = fields
        self._texts[i] = d.field.join(fields)
        self._dirty.add(i)

    def _append_segment(self, name: str) -> None:
        if self._terms and self._terms[-1] == "":
            self._terms[-1] = next((t for t in self._terms if t), "\r")
            self._terms.append("")
        else:
            self._terms.append(self._terms[-1] if self._terms else "\r")
        self._texts.append(name)
        self._fields.append(None)
        self._dirty.add(len(self._texts) - 1)

    # -- output ------------------------------------------------------------------------------------
    def __str__(self) -> str:
        return self._prefix + "".join(t + s for t, s in zip(self._texts, self._terms, strict=True))

    def encode(self) -> bytes:
        """Bytes in the message's charset: the original bytes for every segment not set since parsing."""
        if self._raw is not None and not self._dirty:
            return self._raw
        codec = self.charset.codec
        if self._raw is None or _is_wide(codec):
            return encode(str(self), codec)
        prefix_b = self._prefix.encode(codec) if self._prefix else b""
        if prefix_b and not self._raw.startswith(prefix_b):
            return encode(str(self), codec)
        parts = _TERM_B.split(self._raw[len(prefix_b) :])
        chunks = parts[0::2]
        if chunks[-1] == b"" and len(parts) > 1:
            chunks.pop()
        if len(chunks) != self._orig_n:  # bytes do not line up with the text: encode it all
            return encode(str(self), codec)
        out = [prefix_b]
        for i, (text, term) in enumerate(zip(self._texts, self._terms, strict=True)):
            if i in self._dirty or i >= self._orig_n:
                out.append(encode(text, codec))
            else:
                out.append(chunks[i])
            out.append(term.encode("ascii"))
        return b"".join(out)

    def tokenize(self) -> list[list[list[list[list[str]]]]]:
        """Every segment, field, repetition, component and subcomponent as nested lists (encoded text)."""
        d = self.delimiters
        fs, rs, cs, ss = d.field, d.repetition, d.component, d.subcomponent
        out = []
        for t in self._texts:
            if not t:
                continue
            seg = [[[c.split(ss) for c in r.split(cs)] for r in f.split(rs)] for f in t.split(fs)]
            if t.startswith("MSH") and len(seg) > 1:
                seg[1] = [[[d.encoding_characters]]]
            out.append(seg)
        return out
