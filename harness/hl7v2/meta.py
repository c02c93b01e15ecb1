"""Cheap HL7 v2 metadata for hot paths: MSH and MSA fields without a full parse. Never raises.

Reads MSH-18 from the raw bytes (its values are ASCII), resolves the charset (an explicit setting wins),
decodes the message once (bytes that do not decode are recorded as a problem with their offset, and the
rest is read with those bytes escaped), then slices the MSH line and the first MSA line. Anything odd
goes into ``problems`` as a sentence saying what and where; the proxy still forwards the message.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.hl7v2.charset import FALLBACK_CODEC, declared_in, resolve
from harness.hl7v2.escape import Delimiters, unescape

__all__ = ["Meta", "extract", "make_meta"]

NUL = b"\x00"


@dataclass(frozen=True)
class Meta:
    """What the proxy and the store read of a message. Immutable; no `__slots__`, so that the hot
    paths can build one with `make_meta` (fields absent there take the class's defaults)."""

    message_type: str | None = None
    trigger: str | None = None
    structure: str | None = None
    control_id: str | None = None
    processing_id: str | None = None
    version: str | None = None
    accept_ack_type: str | None = None
    app_ack_type: str | None = None
    ack_code: str | None = None
    ack_control_id: str | None = None
    charset: str | None = None
    sending_app: str | None = None
    sending_facility: str | None = None
    receiving_app: str | None = None
    receiving_facility: str | None = None
    problems: tuple[str, ...] = ()

    @property
    def message_code(self) -> str | None:
        """``ADT^A01`` (type and trigger), ``ACK`` when there is no trigger, None without a type."""
        if not self.message_type:
            return None
        return f"{self.message_type}^{self.trigger}" if self.trigger else self.message_type


_new = object.__new__


def make_meta(**values: object) -> Meta:
    """`Meta(**values)` at a third of the cost: the frozen `__init__` makes one `object.__setattr__`
    call per field (16), and the proxy builds two Metas per message. Only for field names."""
    meta = _new(Meta)
    meta.__dict__.update(values)
    return meta


def _value(fields: list[str], n: int, comp: str, esc: str, delims: Delimiters, codec: str) -> str | None:
    """MSH-style field n's first component of its first repetition (fields[n-1] holds MSH-n)."""
    if n - 1 >= len(fields):
        return None
    v = fields[n - 1]
    if comp and comp in v:
        v = v.split(comp, 1)[0]
    if delims.repetition and delims.repetition in v:
        v = v.split(delims.repetition, 1)[0]
    if esc and esc in v:
        v = unescape(v, delims, codec)
    return v or None


def _component(fields: list[str], n: int, k: int, delims: Delimiters) -> str | None:
    if n - 1 >= len(fields):
        return None
    v = fields[n - 1]
    if delims.repetition and delims.repetition in v:
        v = v.split(delims.repetition, 1)[0]
    comps = v.split(delims.component) if delims.component else [v]
    if k > len(comps):
        return None
    return comps[k - 1] or None


def extract(payload: bytes, charset: str | None = None, fallback: str = FALLBACK_CODEC) -> Meta:
    """Metadata of one message (unframed bytes). Never raises: problems are listed in ``problems``.

    Charset: `charset` when given, else MSH-18, else UTF-8 when the bytes are valid UTF-8, else
    `fallback` (GB18030: a GBK HIS that declares nothing)."""
    try:
        if charset is None and payload.__class__ is bytes:
            meta = _extract_usual(payload)
            if meta is not None:
                return meta
        return _extract(payload, charset, fallback)
    except Exception as exc:  # a bug here must never take a connection down
        return Meta(problems=(f"metadata extraction failed: {type(exc).__name__}: {exc}",))


_USUAL_HEAD = b"MSH|^~\\&|"


def _extract_usual(payload: bytes) -> Meta | None:
    """The proxy's common case in a third of the time: the same Meta as `_extract`, or None to use it.

    Only an ASCII message starting ``MSH|^~\\&|`` with CR segment ends, no MSH-18, no escape in its
    MSH line and no NUL qualifies: then there is nothing to decode, resolve or unescape in MSH, so
    plain splits give exactly what the general path computes.
    """
    if not payload.startswith(_USUAL_HEAD) or not payload.isascii():
        return None
    text = payload.decode("ascii")
    end = text.find("\r")
    if end < 0:
        end = len(text)
    line = text[:end]
    if "\n" in line or "\\" in line[9:] or "\x00" in text:
        return None
    msh = line.split("|")
    n = len(msh)
    if n > 17 and msh[17]:
        return None  # MSH-18 declares a charset: resolve it on the general path
    values: dict[str, object] = {"charset": "utf-8"}
    for name, i in _PLAIN_FIELDS:  # inline, not a function per field: the calls were a third of the time
        if i < n:
            v = msh[i]
            if "^" in v:
                v = v.split("^", 1)[0]
            if "~" in v:
                v = v.split("~", 1)[0]
            if v:
                values[name] = v
    problems: list[str] = []
    mtype = None
    if n > 8:
        v = msh[8]
        if "~" in v:
            v = v.split("~", 1)[0]
        comps = v.split("^")
        mtype = comps[0] or None
        if mtype:
            values["message_type"] = mtype
        if len(comps) > 1:
            if comps[1]:
                values["trigger"] = comps[1]
            if len(comps) > 2 and comps[2]:
                values["structure"] = comps[2]
    if not mtype:
        problems.append("MSH-9 (message type) is empty")
    if "control_id" not in values:
        problems.append("MSH-10 (message control id) is empty")
    pos = _segment_start(text, "MSA|", end)
    if pos >= 0:
        msa = text[pos : _line_end(text, pos)].split("|")
        delims = Delimiters.from_msh("|", "^~\\&")
        values["ack_code"] = _value(msa, 2, "^", "\\", delims, "utf-8")
        values["ack_control_id"] = _value(msa, 3, "^", "\\", delims, "utf-8")
    if problems:
        values["problems"] = tuple(problems)
    meta = _new(Meta)
    meta.__dict__.update(values)  # fields not in values keep the class's defaults (None, ())
    return meta


_PLAIN_FIELDS = (
    ("sending_app", 2),
    ("sending_facility", 3),
    ("receiving_app", 4),
    ("receiving_facility", 5),
    ("control_id", 9),
    ("processing_id", 10),
    ("version", 11),
    ("accept_ack_type", 14),
    ("app_ack_type", 15),
)
"""MSH fields `_extract_usual` reads as their first component of the first repetition (index in the
split MSH line: MSH-n is n-1)."""


def _extract(payload: bytes, charset: str | None, fallback: str = FALLBACK_CODEC) -> Meta:
    problems: list[str] = []
    if not isinstance(payload, bytes | bytearray | memoryview):
        return Meta(problems=(f"payload is {type(payload).__name__}, not bytes",))
    payload = bytes(payload)
    if not payload:
        return Meta(problems=("empty message",))
    cs = resolve(declared_in(payload), charset, data=payload, fallback=fallback)
    if cs.warning:
        problems.append(cs.warning)
    codec = cs.codec
    if payload.isascii():
        text = payload.decode("ascii")
    else:
        try:
            text = payload.decode(codec)
        except UnicodeDecodeError as exc:
            bad = payload[exc.start : exc.end]
            problems.append(f"bytes {bad.hex(' ')} at offset {exc.start} cannot be decoded as {codec}")
            text = payload.decode(codec, "surrogateescape")
        except LookupError:
            problems.append(f"unknown codec {codec!r}")
            text = payload.decode("latin-1")
    nul = text.find("\x00")
    if nul >= 0:
        problems.append(f"NUL byte in message at offset {payload.find(NUL)}")
    start = 0
    if text.startswith("\ufeff"):
        start = 1
    if not text.startswith("MSH", start):
        pos = _segment_start(text, "MSH")
        if pos < 0:
            problems.append(f"no MSH segment at start of message (starts {text[:16]!r})")
            return Meta(charset=codec, problems=tuple(problems))
        problems.append(f"no MSH segment at start of message; MSH found at offset {pos}")
        start = pos
    if len(text) < start + 4 or text[start + 3] in "\r\n":
        problems.append("MSH-1 (field separator) is missing")
        return Meta(charset=codec, problems=tuple(problems))
    fsep = text[start + 3]
    end = _line_end(text, start)
    msh = text[start:end].split(fsep)
    enc = msh[1] if len(msh) > 1 else ""
    if len(enc) < 4:
        problems.append(f"MSH-2 (encoding characters) {enc!r} is short: 4 characters expected")
    elif len(enc) > 5:
        problems.append(f"MSH-2 {enc[:12]!r} is longer than 5 characters")
    elif len(set(fsep + enc)) != len(enc) + 1:
        problems.append(f"MSH-1/MSH-2 {fsep + enc!r} repeat a delimiter")
    delims = Delimiters.from_msh(fsep, enc[:5] if len(set(fsep + enc)) == len(enc) + 1 else "")
    comp, esc = delims.component, delims.escape

    def field(n: int) -> str | None:
        return _value(msh, n, comp, esc, delims, codec)

    message_type = _component(msh, 9, 1, delims)
    if not message_type:
        problems.append("MSH-9 (message type) is empty")
    control_id = field(10)
    if not control_id:
        problems.append("MSH-10 (message control id) is empty")
    ack_code = ack_control_id = None
    pos = _segment_start(text, "MSA" + fsep, end)
    if pos >= 0:
        msa = text[pos : _line_end(text, pos)].split(fsep)
        # msa[0] is "MSA", so MSA-n sits at msa[n], the slot _value reads for n + 1
        ack_code = _value(msa, 2, comp, esc, delims, codec)
        ack_control_id = _value(msa, 3, comp, esc, delims, codec)
    return Meta(
        message_type=message_type,
        trigger=_component(msh, 9, 2, delims),
        structure=_component(msh, 9, 3, delims),
        control_id=control_id,
        processing_id=field(11),
        version=field(12),
        accept_ack_type=field(15),
        app_ack_type=field(16),
        ack_code=ack_code,
        ack_control_id=ack_control_id,
        charset=codec,
        sending_app=field(3),
        sending_facility=field(4),
        receiving_app=field(5),
        receiving_facility=field(6),
        problems=tuple(problems),
    )


def _line_end(text: str, start: int) -> int:
    end = len(text)
    for term in ("\r", "\n"):
        p = text.find(term, start)
        if 0 <= p < end:
            end = p
    return end


def _segment_start(text: str, prefix: str, start: int = 0) -> int:
    """Offset of the first segment (at a line start) beginning with prefix, or -1."""
    best = -1
    for term in ("\r", "\n"):
        p = text.find(term + prefix, start)
        if p >= 0 and (best < 0 or p + 1 < best):
            best = p + 1
    return best
