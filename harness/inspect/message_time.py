"""When a message says it was made, read from the first bytes of its request: the sync delay's start.

HL7 v2: MSH-7; 医保 (medins): the envelope's `inf_time` ('yyyy-MM-dd HH:mm:ss'); HL7 v3 inside SOAP:
`creationTime/@value` (also when the v3 message travels entity-escaped in a string element); FHIR: a Bundle's
`timestamp`. A time without a UTC offset is read in the zone given (the machine's when None). A time with less
than minute precision, an impossible date or no time at all gives None: that exchange is counted as "no
message time", never guessed.

Sync delay is read on every captured exchange of an inspection, so this is plain byte slicing with a cache of
hour starts (a day's traffic shares a few dozen), not a parser: ≈1–2 µs a message.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone, tzinfo

HEAD_BYTES = 4096
"""How much of a request is read for its time: MSH is first in HL7 v2; HTTP heads and SOAP headers come first
in the other kinds (a time beyond this is not found and counted as "no message time")."""

_DTM = re.compile(rb"(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)?(?:\.(\d{1,6}))?([+-]\d{4})?")
_USUAL_MSH7 = re.compile(rb"MSH\|\^~\\&\|(?:[^|\r\n]*\|){4}(\d{14})(?=[|^])").match
_INF_TIME = re.compile(rb'"inf_time"\s*:\s*"(\d{4})-(\d\d)-(\d\d)[ T](\d\d):(\d\d):(\d\d)"')
_CREATION = re.compile(
    rb"creationTime\s+value\s*=\s*(?:\"|'|&quot;|&#34;)(\d{12,14}(?:\.\d{1,6})?(?:[+-]\d{4})?)"
)
_FHIR_TIMESTAMP = re.compile(rb'"timestamp"\s*:\s*"([0-9T:.+\-Z]{16,40})"')


class MessageClock:
    """Reads message times; one per inspection (it caches hour starts per zone)."""

    def __init__(self, tz: tzinfo | None = None) -> None:
        self.tz = tz
        self._hours: dict[tuple[bytes, bytes | None], float | None] = {}

    def time_of(self, kind: str, head: bytes | None) -> float | None:
        """Epoch seconds the message says it was made, or None."""
        if not head:
            return None
        if kind == "hl7v2":
            usual = _USUAL_MSH7(head)
            if usual is not None:  # standard delimiters and a YYYYMMDDHHMMSS MSH-7: one regex match
                value = usual.group(1)
                start = self._hours.get((value[:10], None), -1.0)
                minute, second = int(value[10:12]), int(value[12:14])
                if start is not None and start != -1.0 and minute < 60 and second <= 60:
                    return start + minute * 60 + second
            return self._msh7(head)
        if kind == "medins":
            m = _INF_TIME.search(head)
            return (
                self._parts(
                    m.group(1) + m.group(2) + m.group(3) + m.group(4), m.group(5), m.group(6), None, None
                )
                if m
                else None
            )
        if kind == "soap":
            m = _CREATION.search(head)
            return self.dtm(m.group(1)) if m else None
        if kind == "fhir":
            m = _FHIR_TIMESTAMP.search(head)
            if not m:
                return None
            try:
                when = datetime.fromisoformat(m.group(1).decode("ascii").replace("Z", "+00:00"))
            except ValueError:
                return None
            if when.tzinfo is None and self.tz is not None:
                when = when.replace(tzinfo=self.tz)
            return when.timestamp()
        return None

    def _msh7(self, head: bytes) -> float | None:
        if head[:3] != b"MSH" or len(head) < 9:
            return None
        sep = head[3:4]
        end = head.find(b"\r")
        if end < 0:
            end = head.find(b"\n")
        if end < 0:
            end = len(head)
        at = 3  # MSH-1 is the separator itself: MSH-7 starts after the sixth one
        for _ in range(5):
            at = head.find(sep, at + 1, end)
            if at < 0:
                return None
        stop = head.find(sep, at + 1, end)
        value = head[at + 1 : stop if stop >= 0 else end]
        component = head[4:5]
        if component and component in value:
            value = value.split(component, 1)[0]
        return self.dtm(value)

    def dtm(self, value: bytes) -> float | None:
        """An HL7 DTM (YYYYMMDDHHMM[SS[.S]][+ZZZZ]) as epoch seconds; None below minute precision."""
        if len(value) == 14 and value.isdigit():  # the usual YYYYMMDDHHMMSS: no regex, no call
            start = self._hours.get((value[:10], None), -1.0)
            minute, second = int(value[10:12]), int(value[12:14])
            if start is not None and start != -1.0 and minute < 60 and second <= 60:
                return start + minute * 60 + second
            return self._parts(value[:10], value[10:12], value[12:14], None, None)
        m = _DTM.fullmatch(value.strip())
        if not m:
            return None
        y, mo, d, h, mi, s, frac, offset = m.groups()
        return self._parts(y + mo + d + h, mi, s, frac, offset)

    def _parts(
        self, hour: bytes, minute: bytes, second: bytes | None, frac: bytes | None, offset: bytes | None
    ) -> float | None:
        key = (hour, offset)
        start = self._hours.get(key, -1.0)
        if start == -1.0:
            start = self._hours[key] = self._hour_start(hour, offset)
            if len(self._hours) > 10_000:
                self._hours.clear()
        if start is None:
            return None
        m, s = int(minute), int(second) if second else 0
        if m > 59 or s > 60:
            return None
        return start + m * 60 + s + (int(frac) / 10 ** len(frac) if frac else 0.0)

    def _hour_start(self, hour: bytes, offset: bytes | None) -> float | None:
        tz = self.tz
        if offset is not None:
            sign = -1 if offset[:1] == b"-" else 1
            hours, minutes = int(offset[1:3]), int(offset[3:5])
            if hours > 14 or minutes > 59:
                return None
            tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
        try:
            when = datetime(int(hour[:4]), int(hour[4:6]), int(hour[6:8]), int(hour[8:10]), tzinfo=tz)
        except ValueError:
            return None
        return when.timestamp()
