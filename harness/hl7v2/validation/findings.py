"""Findings: what a validation check says about one place in one message.

Codes are stable identifiers (scripts filter and count on them); the sentence is for people.
A location names the segment by its 1-based position and id, then field, repetition, component
and subcomponent (all 1-based); `str(location)` is the terse form `3:PID-5[2].1.1`.
"""

from __future__ import annotations

from dataclasses import dataclass

ERROR = "error"
WARNING = "warning"
INFO = "info"
SEVERITIES = (ERROR, WARNING, INFO)


@dataclass(frozen=True, slots=True)
class Location:
    segment_index: int | None = None  # 1-based position of the segment in the message
    segment: str | None = None
    field: int | None = None
    repetition: int | None = None
    component: int | None = None
    subcomponent: int | None = None
    group: str | None = None  # the structure's group path, for structure findings

    def __str__(self) -> str:
        if self.segment is None and self.segment_index is None:
            return self.group or "message"
        text = self.segment or "?"
        if self.field is not None:
            text += f"-{self.field}"
            if self.repetition is not None:
                text += f"[{self.repetition}]"
            if self.component is not None:
                text += f".{self.component}"
                if self.subcomponent is not None:
                    text += f".{self.subcomponent}"
        if self.segment_index is not None:
            text = f"{self.segment_index}:{text}"
        return text

    def as_dict(self) -> dict:
        return {
            "segment_index": self.segment_index,
            "segment": self.segment,
            "field": self.field,
            "repetition": self.repetition,
            "component": self.component,
            "subcomponent": self.subcomponent,
            "group": self.group,
        }


MESSAGE = Location()


@dataclass(frozen=True, slots=True)
class Finding:
    severity: str
    code: str
    location: Location
    message: str
    expected: str | None = None
    actual: str | None = None

    @property
    def is_error(self) -> bool:
        return self.severity == ERROR

    def as_dict(self) -> dict:
        return {
            "severity": self.severity,
            "code": self.code,
            "location": str(self.location),
            "position": self.location.as_dict(),
            "message": self.message,
            "expected": self.expected,
            "actual": self.actual,
        }

    def __str__(self) -> str:
        return f"{self.severity:7} {self.code:34} {self.location}  {self.message}"


# The stable codes, with the severity each carries by default and what it means.
CODES: dict[str, tuple[str, str]] = {
    "HL7-PARSE-FILE": (ERROR, "a file that holds no readable HL7 v2 message"),
    "HL7-PARSE-EMPTY": (ERROR, "the message is empty"),
    "HL7-PARSE-NO-MSH": (ERROR, "the message does not start with an MSH segment"),
    "HL7-PARSE-ENCODING-CHARS": (ERROR, "MSH-1/MSH-2 do not declare usable, distinct delimiters"),
    "HL7-PARSE-CHARSET": (ERROR, "bytes that the declared character set cannot decode"),
    "HL7-PARSE-SEGMENT-ID": (ERROR, "a segment id that is not three upper-case letters or digits"),
    "HL7-MSH-VERSION-MISSING": (ERROR, "MSH-12 is empty"),
    "HL7-MSH-VERSION-UNSUPPORTED": (ERROR, "MSH-12 names a version the reference data does not cover"),
    "HL7-MSH-TYPE-MISSING": (ERROR, "MSH-9 lacks the message type or trigger event"),
    "HL7-MSH-STRUCTURE-UNKNOWN": (ERROR, "the MSH-9 message structure does not exist in the MSH-12 version"),
    "HL7-MSH-STRUCTURE-MISMATCH": (
        WARNING,
        "MSH-9.3 differs from the structure the standard assigns the event",
    ),
    "HL7-STRUCT-MISSING-SEGMENT": (ERROR, "a required segment is absent"),
    "HL7-STRUCT-UNEXPECTED-SEGMENT": (ERROR, "a segment the message structure does not contain"),
    "HL7-STRUCT-SEGMENT-ORDER": (ERROR, "a segment of the structure in a place where it is not allowed"),
    "HL7-STRUCT-TOO-MANY": (ERROR, "more repetitions of a segment than the structure allows"),
    "HL7-STRUCT-Z-SEGMENT": (INFO, "a Z-segment, allowed but not checked against the standard"),
    "HL7-STRUCT-Z-FORBIDDEN": (ERROR, "a Z-segment where the profile forbids them"),
    "HL7-SEGMENT-UNKNOWN": (ERROR, "a segment id the version does not define"),
    "HL7-FIELD-REQUIRED": (ERROR, "a required field is empty"),
    "HL7-FIELD-FORBIDDEN": (ERROR, "a field the profile marks not supported (X) carries a value"),
    "HL7-FIELD-REPETITION": (ERROR, "more repetitions of a field than allowed"),
    "HL7-COMPONENT-REQUIRED": (
        ERROR,
        "a required component of a field (or subcomponent) that has a value is empty",
    ),
    "HL7-SOURCE-CONFLICT": (
        WARNING,
        "the two sources of the standard (hl7apy, hl7-dictionary) disagree on whether an element is required "
        "or may repeat, and the message depends on it; not counted as an error",
    ),
    "HL7-FIELD-UNDEFINED": (WARNING, "a value beyond the fields the segment defines"),
    "HL7-COMPONENT-UNDEFINED": (WARNING, "a value beyond the components the datatype defines"),
    "HL7-WITHDRAWN": (WARNING, "a value in a field or component the version withdrew"),
    "HL7-DATATYPE-DT": (ERROR, "not a DT date (YYYY[MM[DD]])"),
    "HL7-DATATYPE-DTM": (ERROR, "not a DTM/TS date-time (YYYY[MM[DD[HH[MM[SS[.S+]]]]]][+/-ZZZZ])"),
    "HL7-DATATYPE-TM": (ERROR, "not a TM time (HH[MM[SS[.S+]]][+/-ZZZZ])"),
    "HL7-DATATYPE-NM": (ERROR, "not an NM number"),
    "HL7-DATATYPE-SI": (ERROR, "not an SI sequence id (non-negative integer)"),
    "HL7-TABLE-VALUE": (WARNING, "a coded value outside the HL7 table"),
    "HL7-LENGTH-EXCEEDED": (WARNING, "a value longer than the standard's maximum"),
    "HL7-ESCAPE-INVALID": (WARNING, "a malformed or unknown escape sequence"),
    "HL7-ACK-CODE": (ERROR, "MSA-1 is not one of AA AE AR CA CE CR"),
    "HL7-ACK-CONTROL-ID": (ERROR, "MSA-2 (the acknowledged control id) is empty"),
    "HL7-ACK-NO-ERR": (INFO, "an error ACK without an ERR segment saying why"),
    "HL7-INTERNAL": (
        ERROR,
        "the validator itself failed on this message (a bug); the message is still listed",
    ),
    "WAIVER-EXPIRED": (
        WARNING,
        "a waiver whose expiry date has passed: the findings it covered count again",
    ),
    "PROFILE-MESSAGE-TYPE": (ERROR, "a message type the profile does not allow"),
    "PROFILE-VERSION": (ERROR, "a version other than the profile's"),
    "PROFILE-CHARSET": (ERROR, "a character set other than the profile's"),
    "PROFILE-SEGMENT-REQUIRED": (ERROR, "a segment the profile requires is absent"),
    "PROFILE-SEGMENT-FORBIDDEN": (ERROR, "a segment the profile forbids is present"),
    "PROFILE-SEGMENT-CARDINALITY": (ERROR, "more occurrences of a segment than the profile allows"),
    "PROFILE-FIELD-REQUIRED": (ERROR, "a field the profile requires is empty"),
    "PROFILE-FIELD-FORBIDDEN": (ERROR, "a field the profile forbids carries a value"),
    "PROFILE-FIELD-CARDINALITY": (ERROR, "more repetitions of a field than the profile allows"),
    "PROFILE-VALUE-SET": (ERROR, "a value outside the profile's value set"),
    "PROFILE-PATTERN": (ERROR, "a value that does not match the profile's pattern"),
    "PROFILE-LENGTH": (ERROR, "a value longer or shorter than the profile allows"),
    "PROFILE-DATATYPE": (ERROR, "a value that is not of the profile's datatype"),
}


def finding(
    code: str, location: Location, message: str, expected=None, actual=None, severity: str | None = None
) -> Finding:
    """A finding with the code's default severity unless one is given."""
    sev = severity or CODES[code][0]
    return Finding(
        sev,
        code,
        location,
        message,
        None if expected is None else str(expected),
        None if actual is None else _clip(str(actual)),
    )


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
