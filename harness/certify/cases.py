"""What certification sends and judges: checks (the columns of the coverage matrix), cases, replies.

A check is one kind of promise the spec makes about an operation ("a request missing a required field is
refused"); a case is one request that tests it, with what the spec says must happen to it (`accept` or
`reject`); a judgement is what the target's reply proves. Plain values, no I/O: the suites build cases,
a target sends them, the suites judge the replies.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

# The checks, in the order the coverage matrix shows them, with the promise each one tests.
CHECKS: dict[str, str] = {
    "example": "the spec's example request is accepted",
    "generated": "generated valid requests are accepted",
    "response": "answers conform to the spec's response constraints",
    "required": "a request missing a required field is rejected",
    "type": "a field of the wrong type is rejected",
    "length": "a value longer than its maximum is rejected",
    "code": "a value outside its code set, allowed values or pattern is rejected",
    "datetime": "a badly formatted date or time is rejected",
    "msgid": "a badly composed message id is rejected",
    "envelope": "a broken envelope is rejected",
    "interaction": "a wrong interaction id or message type is rejected",
    "charset": "a wrong charset declaration is rejected",
    "structure": "a structurally invalid message is rejected",
    "flow": "a stateful flow runs as the spec says: values chain, repeats are refused",
}
# Passive certification judges captured traffic: these, and `response` (the answers conform).
PASSIVE_CHECKS: dict[str, str] = {
    "request": "captured requests conform to the spec",
    "rejected": "captured invalid requests were rejected the way the spec says",
}
PASSIVE_ORDER = ("request", "rejected", "response")
ALL_CHECKS = {**CHECKS, **PASSIVE_CHECKS}

ACCEPT = "accept"
REJECT = "reject"


@dataclass(slots=True)
class Request:
    """One request as it goes on the wire (HTTP: method, path, headers, body; MLLP: body alone)."""

    body: bytes
    method: str = "POST"
    path: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    charset: str = "utf-8"
    """How to show the body in a report (it is sent as the bytes above)."""

    def text(self) -> str:
        return readable(self.body.decode(self.charset, "replace"))


def readable(text: str) -> str:
    """A body as a person reads it in a report: JSON indented, HL7 v2 one segment a line."""
    stripped = text.lstrip()
    if stripped[:1] in ("{", "["):
        try:
            return json.dumps(json.loads(text), ensure_ascii=False, indent=2)
        except ValueError:
            return text
    if stripped.startswith("MSH"):
        return text.replace("\r\n", "\n").replace("\r", "\n").strip()
    return text


@dataclass(slots=True)
class Reply:
    """What came back: HTTP status, headers and body, or the MLLP ACKs; `error` when nothing usable came."""

    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    error: str | None = None
    elapsed_ms: float = 0.0
    acks: list[bytes] = field(default_factory=list)
    """MLLP: every reply frame, in order (the accept ACK first in enhanced mode)."""
    outcome: str | None = None
    """MLLP: the acknowledgement model's verdict (ok, nak, bad_ack, timeout, no_ack_expected, ...)."""
    charset: str = "utf-8"

    def json(self) -> dict | None:
        """The body as a JSON object, or None when it is not one."""
        try:
            value = json.loads(self.body)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def text(self) -> str:
        if self.acks:
            return "\n".join(a.decode(self.charset, "replace").replace("\r", "\n").strip() for a in self.acks)
        return readable(self.body.decode(self.charset, "replace"))


@dataclass(slots=True)
class Case:
    operation: str
    check: str
    title: str
    """What the case does, e.g. `input.data.psn_no removed` or `PID-8 = 'ZZ' (outside sex)`."""
    request: Request
    expect: str = ACCEPT
    constraint: str = ""
    """The spec fact under test, with its label: `input.data.psn_no required (V)`."""
    context: dict[str, Any] = field(default_factory=dict)
    """What the suite needs to judge the reply (the expected response interaction, a key, ...)."""

    @classmethod
    def captured(cls, operation: str, check: str, request: Request, expect: str) -> Case:
        """A case standing for a captured request (passive certification)."""
        return cls(operation, check, "captured", request, expect)


@dataclass(slots=True)
class Judgement:
    passed: bool
    finding: str
    """What the reply showed: the failure for a failed case, what was seen for a passed one."""
    notes: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, problems: list[str], ok: str, shown: int = 8) -> Judgement:
        """Passed with `ok` when there are no problems, else failed listing the first of them."""
        if not problems:
            return cls(True, ok)
        more = f" (+{len(problems) - shown} more)" if len(problems) > shown else ""
        return cls(False, "; ".join(problems[:shown]) + more)


@dataclass(slots=True)
class Evidence:
    """A failed case as the report shows it: request, reply, the finding and how to reproduce it."""

    operation: str
    check: str
    title: str
    expect: str
    constraint: str
    finding: str
    request: str
    reply: str
    method: str = ""
    path: str = ""
    status: int | None = None
    seed: int | None = None
    reproduce: str = ""
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "operation": self.operation,
            "check": self.check,
            "title": self.title,
            "expect": self.expect,
            "constraint": self.constraint,
            "finding": self.finding,
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "request": self.request,
            "reply": self.reply,
            "seed": self.seed,
            "reproduce": self.reproduce,
            "notes": list(self.notes),
        }
