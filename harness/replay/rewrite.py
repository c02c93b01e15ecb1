"""Rules applied to a message before it is re-sent (sans-IO); the captured bytes are never touched.

A replay to a test system usually needs new control ids (the target may de-duplicate on MSH-10),
current or shifted timestamps (some engines reject stale MSH-7), another receiving application and
facility, or one field forced (a test patient's PID-3). Without any rule the payload goes out
byte for byte as captured. Rewrites go through the lossless message model, so untouched parts keep
their original bytes.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone

_DELTA_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([wdhms])", re.IGNORECASE)
_DELTA = re.compile(r"^[+-]?(\s*\d+(?:\.\d+)?\s*[wdhms])+$", re.IGNORECASE)
_UNIT_S = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_DTM = re.compile(
    r"^(?P<y>\d{4})(?P<mo>\d{2})?(?P<d>\d{2})?(?P<h>\d{2})?(?P<mi>\d{2})?(?P<s>\d{2})?"
    r"(?:\.(?P<f>\d{1,4}))?(?P<z>[+-]\d{4})?$"
)


class RewriteError(ValueError):
    """A rule could not be applied to one message; says which rule and what was found."""


def parse_delta(text: str) -> timedelta:
    """`+2h`, `-1d`, `90m`, `-1d6h30m`, `3600s`, `2w` -> timedelta; raises ValueError naming the input."""
    value = text.strip()
    if not _DELTA.match(value):
        raise ValueError(f"time shift {text!r}: expected e.g. +2h, -1d, 90m, -1d6h30m (units w d h m s)")
    sign = -1 if value.startswith("-") else 1
    seconds = sum(float(n) * _UNIT_S[u.lower()] for n, u in _DELTA_PART.findall(value))
    return timedelta(seconds=sign * seconds)


def parse_assignment(text: str, *, option: str = "--set") -> tuple[str, str]:
    """`PID-3=TEST123` -> ('PID-3', 'TEST123'); the value may be empty to clear a field."""
    path, sep, value = text.partition("=")
    if not sep or not path.strip():
        raise ValueError(f"{option} {text!r}: expected PATH=VALUE, e.g. PID-3.1=TEST123")
    return path.strip(), value


def _dtm_precision(m: re.Match[str]) -> str:
    for name in ("f", "s", "mi", "h", "d", "mo"):
        if m.group(name) is not None:
            return name
    return "y"


def _format_dtm(when: datetime, like: re.Match[str] | None, at_least_seconds: bool = False) -> str:
    precision = _dtm_precision(like) if like else "s"
    if at_least_seconds and precision in ("y", "mo", "d", "h", "mi"):
        precision = "s"
    formats = {
        "y": "%Y",
        "mo": "%Y%m",
        "d": "%Y%m%d",
        "h": "%Y%m%d%H",
        "mi": "%Y%m%d%H%M",
        "s": "%Y%m%d%H%M%S",
        "f": "%Y%m%d%H%M%S",
    }
    text = when.strftime(formats[precision])
    if precision == "f" and like is not None:
        digits = len(like.group("f"))
        text += "." + f"{when.microsecond:06d}"[:digits]
    if like is not None and like.group("z"):
        text += when.strftime("%z")
    return text


def shift_dtm(value: str, delta: timedelta) -> str:
    """An HL7 DTM moved by `delta`, keeping its precision and its UTC offset."""
    m = _DTM.match(value.strip())
    if not m:
        raise RewriteError(f"MSH-7 {value!r} is not an HL7 timestamp (YYYYMMDDHHMMSS[.SSSS][+ZZZZ])")
    zone = m.group("z")
    tz = None
    if zone:
        minutes = int(zone[1:3]) * 60 + int(zone[3:5])
        tz = timezone(timedelta(minutes=minutes if zone[0] == "+" else -minutes))
    frac = m.group("f")
    try:
        when = datetime(
            int(m.group("y")),
            int(m.group("mo") or 1),
            int(m.group("d") or 1),
            int(m.group("h") or 0),
            int(m.group("mi") or 0),
            int(m.group("s") or 0),
            int((frac or "0").ljust(6, "0")),
            tzinfo=tz,
        )
    except ValueError as exc:
        raise RewriteError(f"MSH-7 {value!r} is not a valid date and time: {exc}") from None
    return _format_dtm(when + delta, m)


def now_dtm(like: str | None, now: float) -> str:
    """Now as an HL7 DTM, in the precision and zone of `like`: its fraction digits and its UTC offset (the
    time told in that offset); seconds at least (a coarser original would make "now" useless), local time
    without an offset when `like` has none or is not a timestamp."""
    m = _DTM.match(like.strip()) if like else None
    if m and m.group("z"):
        zone = m.group("z")
        minutes = int(zone[1:3]) * 60 + int(zone[3:5])
        tz = timezone(timedelta(minutes=minutes if zone[0] == "+" else -minutes))
        when = datetime.fromtimestamp(now, tz=UTC).astimezone(tz)
    else:
        when = datetime.fromtimestamp(now)
    return _format_dtm(when, m, at_least_seconds=True)


@dataclass(frozen=True, slots=True)
class Rules:
    """What to change before sending. Empty rules send the captured bytes unchanged."""

    new_control_ids: bool = False
    shift_time: timedelta | None = None
    time_now: bool = False
    retarget_app: str | None = None
    retarget_facility: str | None = None
    sets: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.shift_time is not None and self.time_now:
            raise ValueError("--shift-time and --time now cannot be combined")

    @property
    def empty(self) -> bool:
        return not (
            self.new_control_ids
            or self.shift_time is not None
            or self.time_now
            or self.retarget_app is not None
            or self.retarget_facility is not None
            or self.sets
        )

    def to_json(self) -> dict:
        return {
            "new_control_ids": self.new_control_ids,
            "shift_time_s": self.shift_time.total_seconds() if self.shift_time is not None else None,
            "time_now": self.time_now,
            "retarget_app": self.retarget_app,
            "retarget_facility": self.retarget_facility,
            "sets": [list(s) for s in self.sets],
        }

    @classmethod
    def from_json(cls, data: dict) -> Rules:
        shift = data.get("shift_time_s")
        return cls(
            new_control_ids=bool(data.get("new_control_ids")),
            shift_time=timedelta(seconds=shift) if shift is not None else None,
            time_now=bool(data.get("time_now")),
            retarget_app=data.get("retarget_app"),
            retarget_facility=data.get("retarget_facility"),
            sets=tuple((p, v) for p, v in data.get("sets") or ()),
        )


@dataclass(slots=True)
class Rewritten:
    payload: bytes
    control_id: str | None
    """MSH-10 as sent."""
    original_control_id: str | None
    changes: list[tuple[str, str | None, str | None]] = field(default_factory=list)
    """(path, before, after) for every field a rule changed, for --dry-run and reports."""


class Rewriter:
    """Applies `Rules` to messages and keeps the map of old -> new control ids."""

    def __init__(self, rules: Rules, *, clock: Callable[[], float] = time.time) -> None:
        self.rules = rules
        self.clock = clock
        self.id_map: dict[str, str] = {}

    def apply(
        self,
        payload: bytes,
        *,
        charset: str | None = None,
        control_id: str | None = None,
        new_control_id: str | None = None,
    ) -> Rewritten:
        """Rewrite one message. `control_id` is its known MSH-10 (saves a parse when nothing changes);
        `new_control_id` is the id to give it when the rules ask for new ids."""
        rules = self.rules
        if rules.empty:
            return Rewritten(payload, control_id, control_id)
        from harness.hl7v2.message import Message

        try:
            msg = Message.parse(payload, charset)
        except ValueError as exc:
            raise RewriteError(f"cannot rewrite a message that does not parse: {exc}") from None
        old_id = msg.get("MSH-10")
        changes: list[tuple[str, str | None, str | None]] = []

        def put(path: str, value: str) -> None:
            before = msg.get(path)
            if before != value:
                try:
                    msg.set(path, value)
                except (ValueError, KeyError, IndexError) as exc:
                    raise RewriteError(f"cannot set {path}: {exc}") from None
                changes.append((path, before, value))

        if rules.retarget_app is not None:
            put("MSH-5", rules.retarget_app)
        if rules.retarget_facility is not None:
            put("MSH-6", rules.retarget_facility)
        if rules.shift_time is not None:
            stamp = msg.get("MSH-7.1") or msg.get("MSH-7")
            if stamp:
                put("MSH-7", shift_dtm(stamp, rules.shift_time))
        elif rules.time_now:
            put("MSH-7", now_dtm(msg.get("MSH-7.1") or msg.get("MSH-7"), self.clock()))
        if rules.new_control_ids:
            if not new_control_id:
                raise RewriteError("new control ids asked for, but no id was given for this message")
            put("MSH-10", new_control_id)
            if old_id is not None:
                self.id_map[old_id] = new_control_id
        for path, value in rules.sets:
            put(path, value)
        return Rewritten(msg.encode(), msg.get("MSH-10"), old_id, changes)


def control_id_for(run_id: int, original_id: int | None, index: int) -> str:
    """A new MSH-10 that is stable for one original within one run (a resumed run resends the same id)
    and short enough for the 20-character ST limit of older versions."""
    return f"R{run_id}-{original_id}" if original_id is not None else f"R{run_id}-F{index}"


def describe(changes: Sequence[tuple[str, str | None, str | None]]) -> list[str]:
    return [f"{path}: {before!r} -> {after!r}" for path, before, after in changes]
