"""The open workload model: arrivals at a target rate whatever the response times (sans-IO).

Locust's own model is closed: each user sends, waits for the answer, then sends again, so a slow
target slows the load down and hides its own slowness. Here arrivals are scheduled by the curve (the
integral of the target rate gives arrival n its exact time) and each user, when free, claims the next
one and starts it at its time, or at once if it is overdue. When every user is busy, due arrivals wait:
that number is the backlog, and how late each one started is recorded, so a target that cannot keep
up shows as a growing backlog and waiting time instead of a politely lower rate.

All workers share one sequence: worker ``index`` of ``stride`` takes arrivals index, index + stride,
... so the run's total rate is the curve's, however many workers there are. The backlog costs no
memory (it is a count), so nothing is ever shed; the users are the limit on requests in flight.
"""

from __future__ import annotations

import math

from harness.load.shapes import Curve

__all__ = ["Arrivals"]


class Arrivals:
    """One worker's share of one traffic kind's arrivals; times are seconds since the run started."""

    def __init__(self, curve: Curve, index: int = 0, stride: int = 1) -> None:
        if not 0 <= index < stride:
            raise ValueError(f"worker index {index} outside 0..{stride - 1}")
        self.curve = curve
        self.index = index
        self.stride = stride
        self.claimed = 0
        """Arrivals of this worker handed to users so far."""
        self.started = 0
        self._next: float | None = self._time(0)

    def _time(self, k: int) -> float | None:
        """When this worker's k-th arrival (global number index + k*stride, counted from 1) is due."""
        return self.curve.time_for(self.index + k * self.stride + 1)

    def claim(self) -> float | None:
        """The scheduled time of the next arrival, now taken by the caller; None when the run has no more."""
        when = self._next
        if when is None:
            return None
        self.claimed += 1
        self._next = self._time(self.claimed)
        return when

    def due(self, elapsed: float) -> int:
        """This worker's arrivals due by `elapsed` (claimed or not)."""
        total = self.curve.due(elapsed)
        # global arrival numbers 1..floor(total); ours are index+1, index+1+stride, ...
        whole = math.floor(total + 1e-9)
        return max(0, (whole - self.index - 1) // self.stride + 1) if whole > self.index else 0

    def backlog(self, elapsed: float) -> int:
        """Arrivals due by now that no user has taken yet."""
        return max(0, self.due(elapsed) - self.claimed)
