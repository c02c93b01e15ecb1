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
        text = ack_text(reply, charset)
    if text is None and meta_json:
        text = _from_meta(meta_json)
    if text is None and error:
        text = _DURATION.sub(r"N \1", _WAITED.sub("", error))
    text = " ".join((text or "").split())
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"


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
