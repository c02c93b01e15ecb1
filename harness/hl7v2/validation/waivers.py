"""Waivers: findings an interface team accepted, each with its reason: kept visible, not failing the run.

A waiver file is YAML (`harness validate --waivers FILE`, or `waivers:` in a profile):

    waivers:
      - code: HL7-TABLE-VALUE          # required; a code or a glob (HL7-TABLE-*)
        location: PID-22               # optional: SEG, SEG-F, SEG-F.C or SEG-F.C.S; covers the parts below it
        message_type: ADT^A01          # optional: TYPE^EVENT, or TYPE for every event
        control_id: "HIS2024*"         # optional: MSH-10, a glob
        source: "*/his-adt/*.hl7"      # optional: the file (or store#id) the message came from, a glob
        reason: 民族 sent as local codes until the HIS upgrade (ticket 4711)   # required
        expires: 2025-06-30            # optional: from the day after, the waiver no longer applies

A waived finding keeps its severity and stays in every report, marked with the waiver's reason and where it
was written; it no longer makes its message invalid or the run fail. A waiver whose `expires` date has passed
waives nothing: each finding it would have waived counts again and the message gets a WAIVER-EXPIRED warning
saying so. Pure functions over result dicts, so they apply the same way to results from worker processes.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path

from harness.hl7v2.validation.findings import CODES, WARNING

KEYS = ("code", "location", "message_type", "control_id", "source", "reason", "expires")
_LOCATION = re.compile(r"([A-Z][A-Z0-9]{2})(?:-(\d+)(?:\.(\d+)(?:\.(\d+))?)?)?")
_CODE = re.compile(r"[A-Z0-9*?\[\]-]+")


class WaiverError(ValueError):
    """A waiver file that cannot be used; the message names the file, the entry and the key."""


@dataclass(slots=True)
class Waiver:
    code: str
    reason: str
    where: str  # "file.yaml:12" (entry's line), shown in reports
    location: tuple[str, int | None, int | None, int | None] | None = None
    location_text: str | None = None
    message_type: str | None = None
    control_id: str | None = None
    source: str | None = None
    expires: dt.date | None = None
    used: int = 0

    def matches(self, msg: dict, f: dict) -> bool:
        if not fnmatch.fnmatchcase(f["code"], self.code):
            return False
        if self.message_type is not None:
            mtype = msg.get("message_type") or ""
            if mtype != self.message_type and mtype.split("^", 1)[0] != self.message_type:
                return False
        if self.control_id is not None and not fnmatch.fnmatchcase(
            msg.get("control_id") or "", self.control_id
        ):
            return False
        if self.source is not None and not fnmatch.fnmatchcase(msg.get("source") or "", self.source):
            return False
        if self.location is not None:
            pos = f.get("position") or {}
            seg, fld, comp, sub = self.location
            have = (pos.get("segment"), pos.get("field"), pos.get("component"), pos.get("subcomponent"))
            for want, got in zip((seg, fld, comp, sub), have, strict=True):
                if want is not None and want != got:
                    return False
        return True

    def expired(self, today: dt.date) -> bool:
        return self.expires is not None and today > self.expires

    def describe(self) -> dict:
        return {
            "code": self.code,
            "location": self.location_text,
            "message_type": self.message_type,
            "control_id": self.control_id,
            "source": self.source,
            "reason": self.reason,
            "expires": self.expires.isoformat() if self.expires else None,
            "where": self.where,
            "used": self.used,
        }


@dataclass(slots=True)
class WaiverSet:
    waivers: list[Waiver] = field(default_factory=list)
    today: dt.date = field(default_factory=dt.date.today)

    def __bool__(self) -> bool:
        return bool(self.waivers)

    def apply(self, msg: dict) -> dict:
        """Mark the findings of one result dict that a waiver covers; recompute its verdict. Returns msg."""
        if not self.waivers:
            return msg
        expired_hits: dict[int, list[str]] = {}
        for f in msg["findings"]:
            if f.get("waived") or f["code"] == "WAIVER-EXPIRED":
                continue
            for i, w in enumerate(self.waivers):
                if not w.matches(msg, f):
                    continue
                if w.expired(self.today):
                    expired_hits.setdefault(i, []).append(f["location"])
                    continue
                w.used += 1
                f["waived"] = {
                    "reason": w.reason,
                    "by": w.where,
                    "expires": w.expires.isoformat() if w.expires else None,
                }
                break
        already = {f.get("waiver") for f in msg["findings"] if f["code"] == "WAIVER-EXPIRED"}
        for i, locations in expired_hits.items():
            w = self.waivers[i]
            if w.where in already:
                continue
            shown = ", ".join(locations[:5]) + (
                f" and {len(locations) - 5} more" if len(locations) > 5 else ""
            )
            msg["findings"].append(
                {
                    "severity": WARNING,
                    "code": "WAIVER-EXPIRED",
                    "location": "message",
                    "position": {},
                    "message": (
                        f"the waiver at {w.where} for {w.code} expired on {w.expires.isoformat()}; "
                        f"{len(locations)} finding(s) it covered count again ({shown}). Its reason was: "
                        f"{w.reason}"
                    ),
                    "expected": f"a waiver valid on {self.today.isoformat()}",
                    "actual": f"expired {w.expires.isoformat()}",
                    "waiver": w.where,
                }
            )
        msg["valid"] = not any(f["severity"] == "error" and not f.get("waived") for f in msg["findings"])
        return msg

    def report(self) -> list[dict]:
        """Every waiver with how many findings it waived (0: it matched nothing in this run)."""
        return [w.describe() | {"expired": w.expired(self.today)} for w in self.waivers]


def load(paths: list[str | Path], today: dt.date | None = None) -> WaiverSet:
    """Read waiver files; a bad entry raises WaiverError naming the file, entry number and key."""
    out = WaiverSet(today=today or dt.date.today())
    for path in paths:
        out.waivers.extend(_load_file(Path(path)))
    return out


def _load_file(path: Path) -> list[Waiver]:
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise WaiverError(f"{path}: cannot read waiver file: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise WaiverError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise WaiverError(f"{path}:{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict) or not isinstance(data.get("waivers"), list):
        raise WaiverError(f"{path}: a waiver file is a mapping with a list under 'waivers:'")
    lines = _entry_lines(node)
    return [_entry(item, path, n, lines.get(n)) for n, item in enumerate(data["waivers"], 1)]


def _entry_lines(node) -> dict[int, int]:
    """Entry number -> 1-based line of the entry in the file (for 'where' in reports)."""
    import yaml

    if not isinstance(node, yaml.MappingNode):
        return {}
    for key, value in node.value:
        if getattr(key, "value", None) == "waivers" and isinstance(value, yaml.SequenceNode):
            return {n: item.start_mark.line + 1 for n, item in enumerate(value.value, 1)}
    return {}


def _entry(item, path: Path, n: int, line: int | None) -> Waiver:
    where = f"{path}: waivers[{n}]" + (f" (line {line})" if line else "")
    if not isinstance(item, dict):
        raise WaiverError(f"{where}: each waiver is a mapping with at least code and reason")
    unknown = set(item) - set(KEYS)
    if unknown:
        raise WaiverError(
            f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}; known: {', '.join(KEYS)}"
        )
    code = str(item.get("code") or "").strip()
    if not code:
        raise WaiverError(f"{where}.code: required (a finding code such as HL7-TABLE-VALUE, or a glob)")
    if not _CODE.fullmatch(code) or not any(fnmatch.fnmatchcase(c, code) for c in CODES):
        raise WaiverError(
            f"{where}.code {code!r}: matches no finding code (see docs/VALIDATION.md for the codes)"
        )
    reason = item.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise WaiverError(
            f"{where}.reason: required: say why this finding is accepted (it is shown in reports)"
        )
    waiver = Waiver(code, reason.strip(), f"{path.name}:{line}" if line else f"{path.name}#{n}")
    if item.get("location") is not None:
        text = str(item["location"]).strip()
        m = _LOCATION.fullmatch(text)
        if not m:
            raise WaiverError(f"{where}.location {text!r}: looks like PID, PID-3, PID-3.4 or PID-3.4.1")
        waiver.location = (m.group(1), *(int(g) if g else None for g in m.groups()[1:]))
        waiver.location_text = text
    for key in ("message_type", "control_id", "source"):
        if item.get(key) is not None:
            setattr(waiver, key, str(item[key]))
    if item.get("expires") is not None:
        value = item["expires"]
        if isinstance(value, dt.datetime):
            value = value.date()
        if not isinstance(value, dt.date):
            try:
                value = dt.date.fromisoformat(str(value))
            except ValueError:
                raise WaiverError(f"{where}.expires {item['expires']!r}: a date such as 2025-06-30") from None
        waiver.expires = value
    return waiver
