"""When each replayed message is due, computed from captured timestamps (sans-IO).

The scheduler only returns offsets in seconds from the start of the run; the shell sleeps. Keeping
this apart from sockets lets the pacing rules be tested exactly, and a resumed run simply starts a
new schedule at its first unsent message.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

PaceMode = Literal["original", "factor", "rate", "max"]

_FACTOR = re.compile(r"^[xX]\s*(\d+(?:\.\d+)?)$")


@dataclass(frozen=True, slots=True)
class Pace:
    """How fast to replay: the captured gaps, N times faster, R messages/s, or as fast as possible."""

    mode: PaceMode
    value: float = 1.0

    @property
    def needs_timestamps(self) -> bool:
        return self.mode in ("original", "factor")

    def __str__(self) -> str:
        if self.mode == "factor":
            return f"x{self.value:g}"
        if self.mode == "rate":
            return f"{self.value:g}/s"
        return self.mode


def parse_pace(pace: str | None = None, rate: float | None = None) -> Pace:
    """Read `--pace original|xN|max` and `--rate R`; raises ValueError saying what is wrong."""
    if rate is not None:
        if pace not in (None, "", "max"):
            raise ValueError(f"--rate {rate:g} cannot be combined with --pace {pace}")
        if not (isinstance(rate, int | float) and math.isfinite(rate) and rate > 0):
            raise ValueError(f"--rate {rate!r}: expected a positive number of messages per second")
        return Pace("rate", float(rate))
    text = (pace or "max").strip()
    if text.lower() == "original":
        return Pace("original")
    if text.lower() == "max":
        return Pace("max")
    m = _FACTOR.match(text)
    if m:
        factor = float(m.group(1))
        if factor <= 0:
            raise ValueError(f"--pace {text}: the factor must be greater than 0")
        return Pace("factor", factor)
    raise ValueError(f"--pace {text!r}: expected original, xN (e.g. x10) or max")


class Pacer:
    """Turns the captured timestamps of messages, in send order, into due offsets from the run's start.

    Offsets never go backwards: a captured clock that stepped back does not let a later message
    overtake an earlier one. `None` from `due()` means "now" (max pace).
    """

    def __init__(self, pace: Pace) -> None:
        self.pace = pace
        self._first: float | None = None
        self._last_offset = 0.0
        self._count = 0

    def due(self, captured_at: float | None) -> float | None:
        """Offset in seconds (from the first message) at which the next message is due."""
        index = self._count
        self._count += 1
        mode = self.pace.mode
        if mode == "max":
            return None
        if mode == "rate":
            offset = index / self.pace.value
        else:
            if captured_at is None or not math.isfinite(captured_at):
                raise ValueError(
                    f"message {index + 1} has no captured timestamp: --pace {self.pace} needs one "
                    "(messages from files have none; use --rate R or --pace max)"
                )
            if self._first is None:
                self._first = captured_at
            gap = captured_at - self._first
            offset = gap if mode == "original" else gap / self.pace.value
        offset = max(offset, self._last_offset)
        self._last_offset = offset
        return offset


def schedule(pace: Pace, timestamps: list[float | None]) -> list[float | None]:
    """All due offsets for a list of captured timestamps (convenience over `Pacer`)."""
    pacer = Pacer(pace)
    return [pacer.due(ts) for ts in timestamps]
