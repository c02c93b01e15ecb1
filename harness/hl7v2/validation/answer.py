"""What a receiver that validates answers: the ACK outcome and ERR items for a validation result.

A message with no unwaived error is accepted (AA/CA). One whose problems make it unusable as this
interface's message (it cannot be parsed or decoded, its type, version, structure, segments or charset are
not the interface's) is rejected (AR; CR in enhanced mode); one whose content is wrong (a required field
empty, a code outside its set, a bad date or length) is an error (AE; CE in enhanced mode). Validation
happens on receipt, before the message is committed, so in enhanced mode the refusal is the accept ACK
itself: a sender that asked for no application ACK (MSH-16 NE) still learns why. Each error
becomes an ERR item with its location and HL7 table 0357 code. `harness mock mllp --profile` answers with
this, so an HL7 v2 contract suite can be run green against the harness's own simulator.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.hl7v2.ack import AckError

MAX_ERRORS = 20
"""ERR segments per ACK (the first ones; the count of the others is in the last text)."""
REJECT_PREFIXES = ("HL7-PARSE-", "HL7-MSH-", "HL7-STRUCT-", "HL7-SEGMENT-UNKNOWN", "PROFILE-MESSAGE-TYPE",
                   "PROFILE-VERSION", "PROFILE-CHARSET", "PROFILE-SEGMENT-")  # fmt: skip
ERROR_CODES = {  # finding code prefix -> HL7 table 0357
    "HL7-FIELD-REQUIRED": "101",
    "HL7-COMPONENT-REQUIRED": "101",
    "PROFILE-FIELD-REQUIRED": "101",
    "HL7-DATATYPE-": "102",
    "PROFILE-DATATYPE": "102",
    "PROFILE-LENGTH": "102",
    "PROFILE-PATTERN": "102",
    "HL7-TABLE-VALUE": "103",
    "PROFILE-VALUE-SET": "103",
    "HL7-STRUCT-": "100",
    "PROFILE-SEGMENT-": "100",
    "HL7-SEGMENT-UNKNOWN": "100",
    "PROFILE-MESSAGE-TYPE": "200",
    "HL7-MSH-TYPE-MISSING": "200",
    "HL7-MSH-STRUCTURE-UNKNOWN": "200",
    "HL7-MSH-VERSION-": "203",
    "PROFILE-VERSION": "203",
}


@dataclass(slots=True)
class Answer:
    outcome: str  # ok | commit_error | commit_reject (harness.hl7v2.ack.plan's vocabulary)
    errors: list[AckError] = field(default_factory=list)

    def describe(self) -> str:
        if self.outcome == "ok":
            return "valid"
        codes = ", ".join(e.text.split(":", 1)[0] for e in self.errors[:3])
        what = "reject" if self.outcome == "commit_reject" else "error"
        return f"{what}: {len(self.errors)} error(s) ({codes})"


def answer(result: dict) -> Answer:
    """The answer to a validation result dict (harness.hl7v2.validation.validator.Result.as_dict, waivers
    applied): AA/CA when it has no unwaived error, else AR or AE with one ERR item per error."""
    errors = [f for f in result["findings"] if f["severity"] == "error" and not f.get("waived")]
    if not errors:
        return Answer("ok")
    reject = any(f["code"].startswith(REJECT_PREFIXES) for f in errors)
    items = [
        AckError(f"{f['code']}: {f['message']}", _path(f.get("position") or {}), _code(f["code"]))
        for f in errors[:MAX_ERRORS]
    ]
    if len(errors) > MAX_ERRORS:
        items[-1] = AckError(
            f"{items[-1].text} (and {len(errors) - MAX_ERRORS} more)", items[-1].location, items[-1].code
        )
    return Answer("commit_reject" if reject else "commit_error", items)


def _code(finding: str) -> str:
    for prefix, code in ERROR_CODES.items():
        if finding.startswith(prefix):
            return code
    return "207"


def _path(position: dict) -> str | None:
    segment = position.get("segment")
    if not segment or len(segment) != 3:
        return None
    text = segment
    if position.get("field"):
        text += f"-{position['field']}"
        if position.get("component"):
            text += f".{position['component']}"
            if position.get("subcomponent"):
                text += f".{position['subcomponent']}"
    return text
