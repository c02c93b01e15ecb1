"""HL7 v2 acknowledgements: original mode (AA/AE/AR) and enhanced mode (CA/CE/CR), and AR for junk.

The ACK mirrors the message: MSH-3/4 and MSH-5/6 swapped, MSH-11, MSH-12 and MSH-18 echoed, the
message's own MSH-1/MSH-2 delimiters, MSH-9 ``ACK^<trigger>^ACK``, a fresh MSH-7 (now, with offset) and
MSH-10 (unique), MSA-2 = the message's MSH-10, encoded in the message's charset (explicit > MSH-18 >
UTF-8). Fields are copied as encoded text; bytes of the message that did not decode travel back
unchanged. An error or reject code (AE AR CE CR) adds an ERR segment: for v2.5 and later ERR-2 (location,
ERL), ERR-3 (table 0357 code, 207 by default), ERR-4 (severity) and ERR-8 (text); before v2.5 ERR-1
(ELD: segment^sequence^field^code&text&HL70357) with the text in MSA-3.

Which ACKs to send (``plan``), per HL7 v2 chapter 2:

* Original mode, when MSH-15 and MSH-16 are both empty: one application ACK, AA / AE / AR.
* Enhanced mode, when either is valued: an accept (commit) ACK CA / CE / CR is sent when MSH-15 asks
  for it, and, only after a CA, an application ACK AA / AE / AR when MSH-16 asks for it. Conditions
  (table 0155): AL always, NE never, ER only for an error or reject, SU only for success. An empty
  MSH-15 or MSH-16 in enhanced mode counts as AL: a sender that wants no ACK says NE.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from harness.hl7v2.ackmode import AckMode
from harness.hl7v2.charset import CharsetError, declared_in, resolve
from harness.hl7v2.escape import Delimiters, escape
from harness.hl7v2.message import HL7ParseError, check_encoding_characters, parse_path

__all__ = [
    "CODES",
    "ERROR_CODES",
    "AckError",
    "AckPlan",
    "build_ack",
    "new_control_id",
    "plan",
    "reject_unparseable",
]

CODES = ("AA", "AE", "AR", "CA", "CE", "CR")
ERRORS = ("AE", "AR", "CE", "CR")

#: HL7 table 0357, message error condition codes.
ERROR_CODES = {
    "0": "Message accepted",
    "100": "Segment sequence error",
    "101": "Required field missing",
    "102": "Data type error",
    "103": "Table value not found",
    "200": "Unsupported message type",
    "201": "Unsupported event code",
    "202": "Unsupported processing id",
    "203": "Unsupported version id",
    "204": "Unknown key identifier",
    "205": "Duplicate key identifier",
    "206": "Application record locked",
    "207": "Application internal error",
}

OUTCOMES = ("ok", "error", "reject", "commit_error", "commit_reject")


@dataclass(frozen=True, slots=True)
class AckError:
    """One problem an error ACK reports in an ERR segment of its own."""

    text: str
    location: str | None = None
    """A terse path such as `PID-8` or `PV1` (ERR-2); None for the message as a whole."""
    code: str = "207"
    """HL7 table 0357 (ERR-3): 101 required field missing, 102 data type, 103 table value, ..."""


@dataclass(frozen=True, slots=True)
class AckPlan:
    """The ACKs owed for one message: an accept ACK code (enhanced mode) and an application ACK code."""

    accept: str | None
    application: str | None
    enhanced: bool = False


def plan(accept_ack_type: str | None, app_ack_type: str | None, outcome: str = "ok") -> AckPlan:
    """Which ACK codes a receiver owes for a message, given its MSH-15/MSH-16 and what happened to it.

    outcome: ``ok``; ``error`` / ``reject`` (the application failed or refused it after accepting it);
    ``commit_error`` / ``commit_reject`` (it could not be accepted, e.g. storage failed, or is refused
    outright, e.g. unsupported type or version). In original mode both kinds map to AE / AR. The rules
    are `harness.hl7v2.ackmode.AckMode.owed`.
    """
    mode = AckMode.of(accept_ack_type, app_ack_type)
    accept, application = mode.owed(outcome)
    return AckPlan(accept, application, mode.enhanced)


def _now() -> str:
    return datetime.now().astimezone().strftime("%Y%m%d%H%M%S%z")


def new_control_id() -> str:
    """A fresh MSH-10: 20 hex characters (fits the 20-character ST of v2.5)."""
    return uuid.uuid4().hex[:20]


def _version_tuple(version: str) -> tuple[int, ...]:
    out = []
    for part in version.split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        if not digits:
            break
        out.append(int(digits))
    return tuple(out)


def _header(message: bytes, charset: str | None) -> tuple[list[str], Delimiters, str]:
    """The message's MSH fields (encoded text; MSH-n at index n-1), its delimiters and codec."""
    cs = resolve(declared_in(message), charset, data=message)
    try:
        text = message.decode(cs.codec, "surrogateescape")
    except LookupError:
        text = message.decode("utf-8", "surrogateescape")
    if text.startswith("\ufeff"):
        text = text[1:]
    if not text.startswith("MSH"):
        raise HL7ParseError("no MSH segment at start of message: use reject_unparseable()", offset=0)
    if len(text) < 4 or text[3] in "\r\n":
        raise HL7ParseError("MSH-1 (field separator) is missing", offset=3, segment="MSH")
    fsep = text[3]
    end = len(text)
    for term in ("\r", "\n"):
        p = text.find(term)
        if 0 <= p < end:
            end = p
    msh = text[:end].split(fsep)
    enc = msh[1]
    check_encoding_characters(fsep, enc, 4)
    return msh, Delimiters.from_msh(fsep, enc), cs.codec


def _err_segments(
    version: tuple[int, ...],
    d: Delimiters,
    error_code: str,
    severity: str,
    text: str | None,
    error_location: str | None,
) -> list[str]:
    desc = ERROR_CODES.get(error_code, "")
    loc = parse_path(error_location) if error_location else None
    c, s = d.component, d.subcomponent or d.component
    if version and version < (2, 5):
        eld = [loc.segment, str(loc.segment_index), str(loc.field or "")] if loc else ["", "", ""]
        eld.append(s.join([error_code, escape(desc, d), "HL70357"]))
        return ["ERR" + d.field + c.join(eld).rstrip(c)]
    erl = ""
    if loc:
        parts = [loc.segment, str(loc.segment_index), str(loc.field or "")]
        if loc.field is not None:
            parts += [str(loc.repetition or 1), str(loc.component or ""), str(loc.subcomponent or "")]
        erl = c.join(parts).rstrip(c)
    fields = [
        "ERR",
        "",
        erl,
        c.join([error_code, escape(desc, d), "HL70357"]),
        severity,
        "",
        "",
        "",
        escape(text, d) if text else "",
    ]
    return [d.field.join(fields).rstrip(d.field)]


def build_ack(
    message: bytes,
    code: str,
    *,
    text: str | None = None,
    error_location: str | None = None,
    charset: str | None = None,
    error_code: str = "207",
    severity: str = "E",
    control_id: str | None = None,
    errors: Sequence[AckError] = (),
) -> bytes:
    """The ACK for message (unframed, CR-terminated segments, in the message's charset).

    An error code gets one ERR segment per item of `errors` (each with its location, table 0357 code and
    text), or, without `errors`, one built from `text`, `error_location` and `error_code`.

    Raises HL7ParseError when the message has no usable MSH (answer it with reject_unparseable()),
    ValueError for an unknown code or a bad error_location path, CharsetError when text cannot be
    encoded in the message's charset.
    """
    code = code.strip().upper()
    if code not in CODES:
        raise ValueError(f"ACK code {code!r}: expected one of {', '.join(CODES)}")
    msh, d, codec = _header(bytes(message), charset)

    def f(n: int) -> str:
        return msh[n - 1] if n - 1 < len(msh) else ""

    msh9 = f(9).split(d.repetition)[0].split(d.component)
    trigger = msh9[1] if len(msh9) > 1 else ""
    version_field = f(12).split(d.component)[0]
    version = _version_tuple(version_field)
    c = d.component
    fields = [
        "MSH",
        d.encoding_characters,
        f(5),
        f(6),
        f(3),
        f(4),
        _now(),
        "",
        c.join(["ACK", trigger, "ACK"]) if trigger else "ACK",
        control_id or new_control_id(),
        f(11),
        f(12),
        "",
        "",
        "",
        "",
        "",
        f(18),
    ]
    while fields[-1] == "":
        fields.pop()
    msa = ["MSA", code, f(10)]
    old = bool(version) and version < (2, 5)
    if errors and not text:  # before v2.5 the text goes in MSA-3, ERR-1 has no room for it
        text = "; ".join(e.text for e in errors)[:200]
    if text and old:
        msa.append(escape(text, d))
    segments = [d.field.join(fields), d.field.join(msa)]
    if code in ERRORS and errors:
        for e in errors:
            segments += _err_segments(version, d, e.code, severity, e.text, e.location)
    elif code in ERRORS:
        segments += _err_segments(version, d, error_code, severity, text, error_location)
    out = "\r".join(segments) + "\r"
    try:
        return out.encode(codec, "surrogateescape")
    except UnicodeEncodeError as exc:
        raise CharsetError(
            f"ACK text {out[exc.start : exc.end]!r} cannot be encoded as {codec}",
            offset=exc.start,
            bad=out[exc.start : exc.end],
            codec=codec,
        ) from None


def reject_unparseable(payload: bytes, reason: str, *, error_code: str = "207") -> bytes:
    """An AR (v2.5 layout, default delimiters) for input with no usable MSH: MSA-2 empty, ERR-8 = reason.

    ``payload`` is not read (it is what could not be parsed); it is in the signature so callers pass
    what they rejected. ASCII reasons give an ASCII ACK; others are sent as UTF-8 with MSH-18 saying so.
    """
    d = Delimiters()
    reason_text = escape(reason.replace("\r", " ").replace("\n", " "), d)
    ascii_only = reason_text.isascii()
    msh = ["MSH", d.encoding_characters, "", "", "", "", _now(), "", "ACK", new_control_id(), "P", "2.5"]
    if not ascii_only:
        msh += ["", "", "", "", "", "UNICODE UTF-8"]
    err = _err_segments((2, 5), d, error_code, "E", None, None)[0]
    err_fields = err.split(d.field) + [""] * 9
    err_fields[8] = reason_text
    err = d.field.join(err_fields[:9])
    out = "\r".join([d.field.join(msh), "MSA|AR|", err]) + "\r"
    return out.encode("ascii" if ascii_only else "utf-8", "surrogateescape")


def ack_text(reply: bytes, charset: str | None = None) -> str | None:
    """What an ACK says about its message, for people: MSA-3, then each ERR's ERR-8 (user message),
    ERR-3.2 (error code text) or, before v2.5, ERR-1.4.2; repeats dropped. None when it says nothing
    or does not parse."""
    from harness.hl7v2.message import Message

    try:
        message = Message.parse(reply, charset)
    except (ValueError, LookupError):
        return None
    texts: list[str] = []

    def add(path: str) -> None:
        try:
            value = message.get(path)
        except (ValueError, IndexError):
            return
        if value and value.strip() and value.strip() not in texts:
            texts.append(value.strip())

    add("MSA-3")
    for n in range(1, min(message.count("ERR"), 20) + 1):
        for path in (f"ERR[{n}]-8", f"ERR[{n}]-3.2", f"ERR[{n}]-1.4.2"):
            add(path)
    return "; ".join(texts) or None
