"""A load shape from a captured day: its per-minute rate and message mix, read from a capture store.

`harness load PROFILE --from-store captures.db --day 2026-11-25 --scale 2` plays what the proxy
captured that day (local time): one step per minute, from the first to the last minute with traffic,
each with the minute's rate (requests per minute, times the scale) and its mix of message types,
which the users follow minute by minute. Only live traffic counts (replays are left out), optionally
only some channels. Time is compressed into the run's duration, rates are kept.

The traffic kinds follow the capture: HL7 v2 exchanges become MLLP traffic, medins, FHIR and SOAP
their own; an MLLP message type the profile has no template for is made from one captured request of
that type (its identifiers replaced in every message, as for any template). CDC and raw exchanges are
counted and reported, not generated.
"""

from __future__ import annotations

import base64
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from harness.load.shapes import Shape
from harness.store import ExchangeFilter, Store, StoreError

__all__ = ["CapturedDay", "CaptureShapeError", "derive"]

KIND_OF = {"hl7v2": "mllp", "medins": "medins", "fhir": "fhir", "soap": "soap"}


class CaptureShapeError(ValueError):
    """The store or day cannot give a shape (missing file, no traffic that day, a bad date)."""


@dataclass(slots=True)
class CapturedDay:
    shape: Shape
    day: str
    store: str
    channels: list[str] | None
    total: int
    by_kind: Counter = field(default_factory=Counter)
    by_name: dict[str, Counter] = field(default_factory=dict)
    """Traffic kind -> message name -> count."""
    samples: dict[str, bytes] = field(default_factory=dict)
    """One captured request per MLLP message type, to make messages of types without a template."""
    not_generated: Counter = field(default_factory=Counter)
    """Exchanges of kinds load cannot make (cdc, raw), by kind."""
    first: str = ""
    last: str = ""
    peak_per_minute: int = 0

    def describe(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "day": self.day,
            "channels": self.channels,
            "exchanges": self.total,
            "first_minute": self.first,
            "last_minute": self.last,
            "peak_per_minute": self.peak_per_minute,
            "by_kind": dict(self.by_kind),
            "by_name": {k: dict(v.most_common()) for k, v in self.by_name.items()},
            "not_generated": dict(self.not_generated),
        }

    def samples_b64(self) -> dict[str, str]:
        return {name: base64.b64encode(data).decode("ascii") for name, data in self.samples.items()}


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise CaptureShapeError(f"--day {text!r}: expected a date YYYY-MM-DD") from None


def derive(store_path: str | Path, day: str, channels: list[str] | None = None) -> CapturedDay:
    """The captured day's shape and mix (see the module docstring)."""
    path = Path(store_path)
    if not path.is_file():
        raise CaptureShapeError(f"--from-store {path}: no such capture store")
    the_day = _day(day)
    midnight = datetime.combine(the_day, datetime.min.time())
    since, until = midnight.timestamp(), (midnight + timedelta(days=1)).timestamp() - 1e-6
    per_minute: dict[int, Counter] = {}
    by_kind: Counter = Counter()
    by_name: dict[str, Counter] = {}
    not_generated: Counter = Counter()
    total = 0
    flt = ExchangeFilter(channel=channels or None, since=since, until=until, replays=False)
    try:
        with Store(path, create=False) as store:
            for ex in store.query(flt, bodies=False):
                kind = KIND_OF.get(ex.kind)
                if kind is None:
                    not_generated[ex.kind] += 1
                    continue
                name = ex.message_type or "(none)"
                minute = int((ex.started_at - since) // 60)
                per_minute.setdefault(minute, Counter())[name] += 1
                by_kind[kind] += 1
                by_name.setdefault(kind, Counter())[name] += 1
                total += 1
            samples = {}
            for name in by_name.get("mllp", {}):
                sample_filter = ExchangeFilter(
                    channel=channels or None,
                    message_type=name,
                    kind="hl7v2",
                    since=since,
                    until=until,
                    replays=False,
                    limit=1,
                )
                for ex in store.query(sample_filter):
                    samples[name] = ex.request
    except (StoreError, OSError) as exc:
        raise CaptureShapeError(f"--from-store {path}: {exc}") from None
    if not total:
        extra = f" ({sum(not_generated.values())} CDC/raw exchanges only)" if not_generated else ""
        where = f" on channel(s) {', '.join(channels)}" if channels else ""
        raise CaptureShapeError(f"--from-store {path}: no captured traffic on {day}{where}{extra}")
    first, last = min(per_minute), max(per_minute)
    points = []
    mixes = []
    for minute in range(first, last + 1):
        counts = per_minute.get(minute, Counter())
        points.append((float(minute), float(sum(counts.values()))))
        mixes.append(dict(counts))
    shape = Shape(
        "capture",
        tuple(points),
        "step",
        "per_minute",
        clock=True,
        mixes=tuple(mixes),
        description=f"captured {day} in {path.name}, per minute",
    )
    return CapturedDay(
        shape=shape,
        day=day,
        store=str(path),
        channels=channels,
        total=total,
        by_kind=by_kind,
        by_name=by_name,
        samples=samples,
        not_generated=not_generated,
        first=_clock(first),
        last=_clock(last),
        peak_per_minute=int(max(v for _, v in points)),
    )


def _clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"
