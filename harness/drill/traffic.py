"""Synthetic drill traffic: unique, traceable HL7 v2 messages, in order per patient.

Every message of a drill carries the run's id in its control id (MSH-10 `<run><seq:06d>`, 14 characters) so
it can be found in any log an engine keeps, and says what it is everywhere a person looks: sending
application HARNESS, facility DRILL, processing id T (training), a PID of a drill patient, and an NTE with the
run, the sequence number and the patient's own sequence number. Patients get messages in turn; a patient's
messages must reach the engine in the order they were made, which is what the drill checks as 'reordered'.
"""

from __future__ import annotations

import re
import secrets
import string
import time
from dataclasses import dataclass
from datetime import datetime

_BASE36 = string.digits + string.ascii_uppercase


def new_run_id(now: float | None = None) -> str:
    """'DR' + the time in base 36 (6 characters) + 2 random ones: unique across drills, 10 characters."""
    n = int(time.time() if now is None else now)
    digits = ""
    while n:
        n, r = divmod(n, 36)
        digits = _BASE36[r] + digits
    return "DR" + digits.rjust(6, "0")[-6:] + "".join(secrets.choice(_BASE36) for _ in range(2))


def control_id(run: str, seq: int) -> str:
    return f"{run}{seq:06d}"


def id_pattern(run: str) -> re.Pattern[str]:
    """Finds this run's control ids in any text (engine logs, exports)."""
    return re.compile(rf"(?<![0-9A-Z]){re.escape(run)}(\d{{6}})(?![0-9])")


@dataclass(frozen=True, slots=True)
class DrillMessage:
    seq: int
    """0, 1, 2, ... in the order the drill makes them."""
    control_id: str
    patient: int
    patient_seq: int
    """This patient's own order: 0, 1, 2, ..."""
    payload: bytes


class Traffic:
    """Makes the drill's messages: `message(seq)` is the seq-th, the same for the same run and settings."""

    def __init__(
        self,
        run: str,
        *,
        patients: int = 10,
        message_type: str = "ADT^A08",
        receiving: tuple[str, str] = ("HC", "HOSP"),
    ) -> None:
        if patients < 1:
            raise ValueError("patients: at least 1")
        code, sep, trigger = message_type.partition("^")
        if not sep or not code.isalnum() or not trigger.isalnum():
            raise ValueError(f"message type {message_type!r}: expected TYPE^TRIGGER such as ADT^A08")
        self.run = run
        self.patients = patients
        self.code, self.trigger = code.upper(), trigger.upper()
        self.receiving = receiving

    def patient_of(self, seq: int) -> int:
        return seq % self.patients

    def message(self, seq: int, now: float | None = None) -> DrillMessage:
        patient = self.patient_of(seq)
        k = seq // self.patients
        cid = control_id(self.run, seq)
        stamp = datetime.fromtimestamp(time.time() if now is None else now).strftime("%Y%m%d%H%M%S")
        app, facility = self.receiving
        text = (
            f"MSH|^~\\&|HARNESS|DRILL|{app}|{facility}|{stamp}||{self.code}^{self.trigger}|{cid}|T|2.5\r"
            f"EVN|{self.trigger}|{stamp}\r"
            f"PID|1||{self.run}P{patient:03d}^^^DRILL^MR||DRILL^PATIENT {patient:03d}||19700101|U\r"
            f"PV1|1|N\r"
            f"NTE|1||harness switchover drill {self.run}: message {seq}, patient {patient:03d} number {k}\r"
        )
        return DrillMessage(seq, cid, patient, k, text.encode("ascii"))
