"""What a message expects back, and what the replies it got add up to: one model for every tool.

HL7 v2 chapter 2 (2.9, acknowledgement modes), read from MSH-15 (accept acknowledgement type) and MSH-16
(application acknowledgement type):

* **Original mode**, both fields empty: exactly one reply, the application ACK (AA / AE / AR).
* **Enhanced mode**, either valued: an accept (commit) ACK CA / CE / CR as MSH-15 asks, then — only
  after a CA — an application ACK AA / AE / AR as MSH-16 asks. Conditions (table 0155): ``AL`` always,
  ``NE`` never, ``ER`` only on error or reject, ``SU`` only on success. An empty field in enhanced mode
  counts as ``AL``, as does an unknown value (answering is safer than silence), with a problem noted.

`AckMode` is the expectation; `AckState` follows one message's replies (`take`) and says what is still
awaited (`waiting`): ``required`` (a reply must come: its absence is a timeout), ``conditional`` (one
may come — ER/SU — and silence after a wait has a meaning of its own, `silence`) or ``none`` (done).
The proxy, `harness send`, replay, the MLLP mock and the capture all read acknowledgements through
this module, so they cannot disagree about what "accepted" means.

Verdicts (the exchange outcomes they become): ``ok`` (accepted as asked), ``nak`` (AE AR CE CR),
``bad_ack`` (a reply whose MSA-1 is empty or not one of the six codes, or that has no MSA at all),
``timeout`` (a required reply did not come; also SU silence: the success that was to be confirmed was
not), ``no_ack_expected`` (NE/NE: nothing was to come).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "ACCEPT_CODES",
    "APPLICATION_CODES",
    "CODES",
    "AckMode",
    "AckState",
    "reply_kind",
]

CONDITIONS = ("AL", "NE", "ER", "SU")
ACCEPT_CODES = frozenset({"CA", "CE", "CR"})
APPLICATION_CODES = frozenset({"AA", "AE", "AR"})
CODES = ACCEPT_CODES | APPLICATION_CODES
POSITIVE = frozenset({"AA", "CA"})

REQUIRED = "required"
CONDITIONAL = "conditional"
NONE = "none"


def reply_kind(code: str | None) -> str:
    """``accept`` (CA CE CR), ``application`` (AA AE AR) or ``bad`` (empty, unknown, no MSA)."""
    if code in ACCEPT_CODES:
        return "accept"
    if code in APPLICATION_CODES:
        return "application"
    return "bad"


def _condition(value: str | None, name: str, problems: list[str]) -> str:
    text = (value or "").strip().upper()
    if not text:
        return "AL"
    if text not in CONDITIONS:
        problems.append(f"{name} {value!r} is not AL, NE, ER or SU (HL7 table 0155); taken as AL")
        return "AL"
    return text


@dataclass(frozen=True, slots=True)
class AckMode:
    """The acknowledgements a message asks for (see the module docstring)."""

    enhanced: bool = False
    accept: str = "NE"
    """Condition for the accept ACK: always ``NE`` in original mode."""
    application: str = "AL"
    """Condition for the application ACK: always ``AL`` in original mode."""
    problems: tuple[str, ...] = ()

    @classmethod
    def of(cls, accept_ack_type: str | None, app_ack_type: str | None) -> AckMode:
        """From MSH-15 and MSH-16 as read from the message (None or empty when absent)."""
        if not (accept_ack_type or "").strip() and not (app_ack_type or "").strip():
            return ORIGINAL
        problems: list[str] = []
        accept = _condition(accept_ack_type, "MSH-15", problems)
        application = _condition(app_ack_type, "MSH-16", problems)
        return cls(True, accept, application, tuple(problems))

    @classmethod
    def of_meta(cls, meta: object) -> AckMode:
        """From a `harness.hl7v2.meta.Meta` (anything with accept_ack_type / app_ack_type)."""
        accept = getattr(meta, "accept_ack_type", None)
        application = getattr(meta, "app_ack_type", None)
        if accept is None and application is None:
            return ORIGINAL
        return cls.of(accept, application)

    @property
    def expects_nothing(self) -> bool:
        """NE/NE: the sender asked for no acknowledgement at all."""
        return self.enhanced and self.accept == "NE" and self.application == "NE"

    def describe(self) -> str:
        if not self.enhanced:
            return "original mode: one application ACK"
        return f"enhanced mode: accept ACK {self.accept}, application ACK {self.application}"

    def owed(self, outcome: str) -> tuple[str | None, str | None]:
        """The receiver's side: (accept code, application code) to send for a message, None = send none.

        outcome: ``ok``; ``error`` / ``reject`` (failed or refused after being committed);
        ``commit_error`` / ``commit_reject`` (could not be committed, or refused outright). Original
        mode answers every outcome with one application ACK (AA / AE / AR).
        """
        try:
            accept, application = _RECEIVER[outcome]
        except KeyError:
            raise ValueError(f"outcome {outcome!r}: expected one of {', '.join(_RECEIVER)}") from None
        if not self.enhanced:
            return None, application or ("AE" if accept == "CE" else "AR")
        sent_accept = accept if _wanted(self.accept, accept == "CA") else None
        if accept != "CA":
            return sent_accept, None
        return sent_accept, (application if _wanted(self.application, application == "AA") else None)

    def start(self) -> AckState:
        """A fresh state for one message; NE/NE starts (and stays) complete."""
        return AckState(self, done=self.expects_nothing)


ORIGINAL = AckMode()

_RECEIVER: dict[str, tuple[str, str | None]] = {
    "ok": ("CA", "AA"),
    "error": ("CA", "AE"),
    "reject": ("CA", "AR"),
    "commit_error": ("CE", None),
    "commit_reject": ("CR", None),
}


def _wanted(condition: str, success: bool) -> bool:
    if condition == "NE":
        return False
    if condition == "ER":
        return not success
    if condition == "SU":
        return success
    return True


@dataclass(slots=True)
class AckState:
    """One message's replies so far, and what is still awaited (sans-IO; the caller keeps the clock)."""

    mode: AckMode
    accept_code: str | None = None
    """MSA-1 of the accept ACK, once one came."""
    application_code: str | None = None
    """MSA-1 of the application ACK (original mode: the one ACK), once one came."""
    bad_code: str | None = None
    """Set (possibly to "") when a reply with an unusable MSA-1 ended the exchange."""
    notes: list[str] = field(default_factory=list)
    done: bool = False
    silent: str | None = None
    """The verdict of a conditional wait that ended without a reply (`silence`)."""

    # -- what is awaited -------------------------------------------------------------------------

    def waiting(self) -> str:
        """``required``, ``conditional`` or ``none`` (see the module docstring)."""
        if self.done:
            return NONE
        mode = self.mode
        if not mode.enhanced:
            return REQUIRED
        if self.accept_code is None:
            # nothing yet: the accept ACK, or an application ACK when no accept ACK is due on success
            if mode.accept == "AL" or mode.application == "AL":
                return REQUIRED
            if mode.accept == "NE" and mode.application == "NE":
                return NONE
            return CONDITIONAL
        # after a CA: the application ACK as MSH-16 asks
        if mode.application == "AL":
            return REQUIRED
        if mode.application == "NE":
            return NONE
        return CONDITIONAL

    @property
    def awaiting_first(self) -> bool:
        """No reply has come yet (the sender of a stop-and-wait link is still blocked on this message)."""
        return self.accept_code is None and self.application_code is None and self.bad_code is None

    # -- replies ---------------------------------------------------------------------------------

    def accepts(self, code: str | None) -> bool:
        """Could a reply with this MSA-1 belong to this message now? (used to correlate reused ids)"""
        if self.done:
            return False
        kind = reply_kind(code)
        if kind == "accept":
            return self.accept_code is None and self.application_code is None
        return True

    def take(self, code: str | None) -> bool:
        """Record a reply with MSA-1 `code`; True when it completes the exchange."""
        kind = reply_kind(code)
        mode = self.mode
        if kind == "bad":
            self.bad_code = code or ""
            self.done = True
            return True
        if kind == "application":
            self.application_code = code
            if mode.enhanced and self.accept_code is None and mode.accept == "AL":
                self.notes.append(f"application ACK {code} came without the accept ACK MSH-15 AL asks for")
            self.done = True
            return True
        # an accept ACK
        if self.accept_code is not None:
            self.notes.append(f"a second accept ACK {code} after {self.accept_code}")
            return False
        self.accept_code = code
        if not mode.enhanced:
            self.notes.append(f"accept ACK {code} answered an original-mode message (MSH-15/16 empty)")
            self.done = True
            return True
        if mode.accept in ("NE", "SU") and code != "CA":
            self.notes.append(f"accept ACK {code} although MSH-15 is {mode.accept}")
        elif mode.accept in ("NE", "ER") and code == "CA":
            self.notes.append(f"accept ACK CA although MSH-15 is {mode.accept}")
        if code != "CA":
            self.done = True  # CE / CR: not committed, no application ACK follows
            return True
        if self.waiting() == NONE:
            self.done = True
            return True
        return False

    def silence(self) -> str:
        """The verdict when the wait for a conditional reply ends without one; completes the exchange.

        ER (reply only on error): silence means accepted. SU (reply only on success): silence means the
        success that was to be confirmed was not, a timeout.
        """
        mode = self.mode
        pending = (mode.accept, mode.application) if self.accept_code is None else (mode.application,)
        self.done = True
        if "SU" in pending:
            self.silent = "timeout"
            self.notes.append("no ACK came although MSH-15/16 SU asks for one on success")
        else:
            self.silent = "ok"
            self.notes.append("no error ACK came (MSH-15/16 ER): accepted")
        return self.silent

    # -- verdict ---------------------------------------------------------------------------------

    def verdict(self) -> str:
        """The outcome so far: ok, nak, bad_ack, timeout (SU silence), no_ack_expected, or pending."""
        if self.bad_code is not None:
            return "bad_ack"
        for code in (self.accept_code, self.application_code):
            if code is not None and code not in POSITIVE:
                return "nak"
        if not self.done:
            return "pending"
        if self.silent is not None:
            return self.silent
        if self.application_code is not None or self.accept_code is not None:
            return "ok"
        return "no_ack_expected"
