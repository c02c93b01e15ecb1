"""What a failed exchange says went wrong, short enough to group by: the 'reason' of the top-N failures.

HL7 v2: the NAK's own words (MSA-3, ERR-8, ERR-3.2 through `ack_text`); 医保: `err_msg`; SOAP: the Fault's
string; FHIR: the OperationOutcome's first diagnostics; CDC: its reasons; otherwise the proxy's error text
with the parts that differ between otherwise equal failures (waiting times) taken out.
"""

from __future__ import annotations

import json
import re

from harness.hl7v2.ack import ack_text

MAX_REASON = 160
_WAITED = re.compile(r"\s*\(after \d+(?:\.\d+)? s\)")
_DURATION = re.compile(r"\b\d+(?:\.\d+)? ?(ms|s)\b")


def reason(
    kind: str, reply: bytes | None, meta_json: str | None, error: str | None, charset: str | None = None
) -> str:
    text = None
    if kind == "hl7v2" and reply:
        text = _nak_text(reply, charset)
    if text is None and meta_json:
        text = _from_meta(meta_json)
    if text is None and error:
        text = _DURATION.sub(r"N \1", _WAITED.sub("", error))
    text = " ".join((text or "").split())
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"


_TEXTS: dict[tuple, str | None] = {}
"""What NAKs said, by their bytes less the parts that differ per message (MSH, MSA-2): a busy interface
refuses many messages for the same few reasons, and parsing each NAK would cost more than the rest."""


def _nak_text(reply: bytes, charset: str | None) -> str | None:
    at = reply.find(b"MSA")
    key: tuple = (charset, reply)
    if at >= 0:
        sep = reply[3:4] if reply[:3] == b"MSH" and len(reply) > 3 else b"|"
        end = reply.find(b"\r", at)
        segment = reply[at : end if end >= 0 else len(reply)].split(sep)
        if len(segment) > 2:
            segment[2] = b""
        key = (charset, sep.join(segment), reply[end:] if end >= 0 else b"")
    if key in _TEXTS:
        return _TEXTS[key]
    if len(_TEXTS) >= 4096:
        _TEXTS.clear()
    text = _TEXTS[key] = ack_text(reply, charset)
    return text


def _from_meta(meta_json: str) -> str | None:
    try:
        meta = json.loads(meta_json)
    except ValueError:
        return None
    if not isinstance(meta, dict):
        return None
    for key in ("err_msg", "fault_string"):
        if meta.get(key):
            return str(meta[key])
    issues = meta.get("issues")
    if isinstance(issues, list):
        for issue in issues:
            if isinstance(issue, dict) and (issue.get("diagnostics") or issue.get("code")):
                return str(issue.get("diagnostics") or issue.get("code"))
    reasons = meta.get("reasons")
    if reasons:
        return "; ".join(str(r) for r in reasons) if isinstance(reasons, list) else str(reasons)
    problems = meta.get("problems")
    if isinstance(problems, list) and problems:
        return str(problems[0])
    return None
