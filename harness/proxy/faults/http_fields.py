"""What a fault rule may put in an HTTP header: RFC 9110 field names and field values, nothing else.

A rule's header reaches the wire as written, so a CR or LF in a value would split the response (a
second, forged response or header after it), a NUL or a character outside Latin-1 cannot be encoded
at all and would fail every matching request when the reply is built. Such rules are refused when
they are added, with the offending character and its position. Framing headers are the proxy's to
set: a rule that adds Content-Length or Transfer-Encoding would make the response ambiguous.
"""

from __future__ import annotations

import re

from harness.proxy.faults.params import RuleError

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FIELD_VALUE = re.compile(r"(?:[\x21-\x7e\x80-\xff](?:[\t\x20-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?)?")
FRAMING = frozenset({"content-length", "transfer-encoding", "connection", "upgrade", "te", "trailer"})
MAX_VALUE_CHARS = 8192


def check_name(name: object, where: str, *, framing_allowed: bool = True) -> str:
    """`name` when it is an RFC 9110 token (and, unless allowed, not a framing header)."""
    if not isinstance(name, str) or not _TOKEN.fullmatch(name):
        raise RuleError(
            where, f"{name!r} is not an HTTP header name (letters, digits and !#$%&'*+-.^_`|~ only)"
        )
    if not framing_allowed and name.lower() in FRAMING:
        raise RuleError(where, f"{name} is set by the proxy to frame the message; a rule cannot set it")
    return name


def check_value(value: str, where: str) -> str:
    """`value` when it is an RFC 9110 field value: no CR, LF, NUL or other control, Latin-1 only,
    no leading or trailing whitespace."""
    if len(value) > MAX_VALUE_CHARS:
        raise RuleError(where, f"header value of {len(value)} characters; at most {MAX_VALUE_CHARS}")
    if _FIELD_VALUE.fullmatch(value):
        return value
    for i, char in enumerate(value):
        code = ord(char)
        if code > 0xFF:
            raise RuleError(
                where,
                f"character {char!r} (U+{code:04X}) at {i} cannot be sent in an HTTP header (Latin-1 "
                "only; put non-Latin text in the body, or percent-encode it)",
            )
        if (code < 0x20 and char != "\t") or code == 0x7F:
            name = {0x0D: "CR", 0x0A: "LF", 0x00: "NUL"}.get(code, f"control character 0x{code:02X}")
            raise RuleError(where, f"{name} at {i} is not allowed in an HTTP header value")
    raise RuleError(where, "an HTTP header value cannot start or end with whitespace")
