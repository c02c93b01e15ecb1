"""Certification waivers: checks an interface team accepted not to pass, each with its reason.

A waiver file is YAML (`harness certify --waivers FILE`):

    waivers:
      - operation: "3101"            # required; an operation or flow (flow:outpatient), or a glob ("35*")
        check: generated             # required; a check name or a glob ("*")
        reason: 规则引擎由省平台提供，本院不对接 (ticket 4711)   # required
        expires: 2027-06-30          # optional: from the day after, the waiver no longer applies

A waived cell keeps its evidence and its earlier status in every report; it no longer makes the verdict
FAIL or INCOMPLETE. An expired waiver waives nothing and the report says so. Waivers never touch cells
that passed.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from dataclasses import dataclass
from pathlib import Path

from harness import specfile
from harness.certify.cases import ALL_CHECKS
from harness.certify.results import FAILED, NOT_RUN, WAIVED, Run

KEYS = ("operation", "check", "reason", "expires")


class WaiverError(ValueError):
    """A waiver file that cannot be used; the message names the file, the entry and the key."""


@dataclass(slots=True)
class Waiver:
    operation: str
    check: str
    reason: str
    where: str
    expires: dt.date | None = None
    used: int = 0

    def matches(self, operation: str, check: str) -> bool:
        return fnmatch.fnmatchcase(operation, self.operation) and fnmatch.fnmatchcase(check, self.check)

    def describe(self, today: dt.date) -> dict:
        return {
            "operation": self.operation,
            "check": self.check,
            "reason": self.reason,
            "where": self.where,
            "expires": self.expires.isoformat() if self.expires else None,
            "expired": bool(self.expires and today > self.expires),
            "used": self.used,
        }


def load(path: str | Path) -> list[Waiver]:
    path = Path(path)
    try:
        data = specfile.read_yaml(path)
    except specfile.SpecError as exc:
        raise WaiverError(str(exc)) from None
    entries = data.get("waivers") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise WaiverError(f"{path}: expected `waivers:` with a list of entries")
    out = []
    for i, entry in enumerate(entries):
        where = f"{path}: waivers[{i}]"
        if not isinstance(entry, dict):
            raise WaiverError(f"{where}: an entry is a mapping with operation, check and reason")
        unknown = sorted(set(entry) - set(KEYS))
        if unknown:
            raise WaiverError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(KEYS)}")
        for key in ("operation", "check", "reason"):
            if not str(entry.get(key) or "").strip():
                raise WaiverError(f"{where}.{key}: missing (a waiver names what it accepts and why)")
        check = str(entry["check"])
        if not any(fnmatch.fnmatchcase(name, check) for name in ALL_CHECKS):
            raise WaiverError(f"{where}.check {check!r} matches no check; checks: {', '.join(ALL_CHECKS)}")
        expires = entry.get("expires")
        if expires is not None and not isinstance(expires, dt.date):
            try:
                expires = dt.date.fromisoformat(str(expires))
            except ValueError:
                raise WaiverError(f"{where}.expires: {expires!r} is not a date (yyyy-mm-dd)") from None
        out.append(
            Waiver(str(entry["operation"]), check, str(entry["reason"]), f"{path.name}#{i + 1}", expires)
        )
    return out


def apply(run: Run, waivers: list[Waiver], today: dt.date | None = None) -> None:
    """Mark failed and not-run cells a live waiver covers; note expired waivers on the run."""
    today = today or dt.date.today()
    for cell in run.cells.values():
        if cell.status not in (FAILED, NOT_RUN):
            continue
        for waiver in waivers:
            if not waiver.matches(cell.operation, cell.check):
                continue
            if waiver.expires and today > waiver.expires:
                note = (
                    f"waiver {waiver.where} ({waiver.operation} {waiver.check}) expired on {waiver.expires}"
                )
                if note not in run.notes:
                    run.notes.append(note)
                continue
            waiver.used += 1
            cell.waived_status, cell.status = cell.status, WAIVED
            cell.waived_by, cell.reason = waiver.where, waiver.reason
            break
    run.waivers = [w.describe(today) for w in waivers]
