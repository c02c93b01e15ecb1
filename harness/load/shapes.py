"""Load shapes: how the load rises and falls over a run, as data (sans-IO, no locust here).

A shape is a list of points ``(x, value)`` joined linearly or held as steps. ``x`` is the shape's own
time: clock minutes of a day (``07:30`` = 450) for the outpatient peak and captured days, or a fraction
of the run (0 … 1) for step, spike and soak. ``value`` is a rate in requests per minute (``per_minute``:
the outpatient peak of a reference hospital, a captured day) or a level relative to the peak
(``level``). The whole shape is played over the run's duration, so a 07:00–12:00 morning compresses
into a 10-minute run with its rates kept.

`Curve` turns a shape into what a run needs: the target at any moment (requests per second in the open
model, users in the closed model) and, for the open model, the exact number of arrivals due by then
(the integral of the rate), so a pacer never drifts however often it looks.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BUILTIN", "Curve", "Shape", "ShapeError", "clock", "parse_shape"]

INTERPOLATIONS = ("linear", "step")
UNITS = ("per_minute", "level")


class ShapeError(ValueError):
    """A shape that cannot be used; the message names the key path."""


def clock(minutes: float) -> str:
    """450 -> '07:30' (minutes of a day; past midnight wraps)."""
    m = int(round(minutes)) % (24 * 60)
    return f"{m // 60:02d}:{m % 60:02d}"


def _minutes(value: Any, where: str) -> float:
    if isinstance(value, str) and ":" in value:
        hh, _, mm = value.partition(":")
        if hh.isdigit() and mm.isdigit() and int(hh) < 24 and int(mm) < 60:
            return int(hh) * 60 + int(mm)
        raise ShapeError(f"{where}: {value!r} is not a clock time HH:MM")
    raise ShapeError(f"{where}: expected a clock time HH:MM, got {value!r}")


@dataclass(frozen=True, slots=True)
class Shape:
    name: str
    points: tuple[tuple[float, float], ...]
    interpolate: str = "linear"
    unit: str = "level"
    clock: bool = False
    """True when x is minutes of a day (axis labels 07:30), False when it is a fraction of the run."""
    mixes: tuple[Mapping[str, float], ...] | None = None
    """Per point (step shapes): the message mix from that point on; None when the profile's mix holds."""
    description: str = ""

    def __post_init__(self) -> None:
        if len(self.points) < 1:
            raise ShapeError(f"shape {self.name}: needs at least one point")
        xs = [x for x, _ in self.points]
        if any(b < a for a, b in zip(xs, xs[1:], strict=False)):
            raise ShapeError(f"shape {self.name}: points must be in time order")
        if any(v < 0 or not math.isfinite(v) for _, v in self.points):
            raise ShapeError(f"shape {self.name}: values must be finite and not negative")
        if self.interpolate not in INTERPOLATIONS:
            raise ShapeError(f"shape {self.name}: interpolate must be one of {', '.join(INTERPOLATIONS)}")
        if self.unit not in UNITS:
            raise ShapeError(f"shape {self.name}: unit must be one of {', '.join(UNITS)}")
        if self.mixes is not None and len(self.mixes) != len(self.points):
            raise ShapeError(f"shape {self.name}: one mix per point")

    @property
    def start(self) -> float:
        return self.points[0][0] if self.clock else 0.0

    @property
    def end(self) -> float:
        """Where the shape ends: a run fraction's 1.0; a clock shape's last point (a step shape's last
        point lasts one minute more: a captured minute)."""
        if not self.clock:
            return 1.0
        last = self.points[-1][0]
        if self.interpolate == "step" or self.start == last:
            return last + 1
        return last

    @property
    def peak(self) -> float:
        return max(v for _, v in self.points)

    def x_at(self, fraction: float) -> float:
        return self.start + min(max(fraction, 0.0), 1.0) * (self.end - self.start)

    def _index(self, x: float) -> int:
        """Index of the last point at or before x (0 before the first)."""
        return max(0, bisect.bisect_right([p[0] for p in self.points], x) - 1)

    def value_at(self, fraction: float) -> float:
        x = self.x_at(fraction)
        i = self._index(x)
        x0, v0 = self.points[i]
        if self.interpolate == "step" or i + 1 >= len(self.points) or x < x0:
            return v0
        x1, v1 = self.points[i + 1]
        if x1 == x0:
            return v1
        return v0 + (v1 - v0) * (x - x0) / (x1 - x0)

    def mix_at(self, fraction: float) -> Mapping[str, float] | None:
        if self.mixes is None:
            return None
        return self.mixes[self._index(self.x_at(fraction))]

    def label_at(self, fraction: float) -> str:
        """What a report prints for this moment: the clock time, or the percentage of the run."""
        return clock(self.x_at(fraction)) if self.clock else f"{fraction * 100:.0f}%"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "points": [list(p) for p in self.points],
            "interpolate": self.interpolate,
            "unit": self.unit,
            "clock": self.clock,
            "description": self.description,
        }
        if self.mixes is not None:
            out["mixes"] = [dict(m) for m in self.mixes]
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Shape:
        mixes = data.get("mixes")
        return cls(
            name=data["name"],
            points=tuple((float(x), float(v)) for x, v in data["points"]),
            interpolate=data.get("interpolate", "linear"),
            unit=data.get("unit", "level"),
            clock=bool(data.get("clock", False)),
            mixes=tuple(dict(m) for m in mixes) if mixes is not None else None,
            description=data.get("description", ""),
        )


def _outpatient_peak(params: Mapping[str, Any], where: str) -> Shape:
    _no_params(params, where)
    # A reference county hospital's HIS feed, requests per minute: quiet before 07:30, registration
    # opens and the queue builds to 08:00, plateau while clinics run (08:00-11:00), decline to noon.
    return Shape(
        "outpatient-peak",
        ((420, 150), (450, 150), (480, 1500), (660, 1500), (720, 300)),
        "linear",
        "per_minute",
        clock=True,
        description="ramp from 07:30, plateau 08:00-11:00, decline to 12:00 (requests per minute)",
    )


def _step(params: Mapping[str, Any], where: str) -> Shape:
    steps = _int(params, "steps", 5, where, minimum=1)
    start = _number(params, "start", 0.2, where)
    step = _number(params, "step", 0.2, where)
    _no_params(params, where, ("steps", "start", "step"))
    points = tuple((i / steps, start + i * step) for i in range(steps)) + ((1.0, start + (steps - 1) * step),)
    return Shape(
        "step", points, "step", "level", description=f"{steps} equal steps from {start:g} by {step:g}"
    )


def _spike(params: Mapping[str, Any], where: str) -> Shape:
    base = _number(params, "base", 0.25, where)
    spike = _number(params, "spike", 1.0, where)
    at = _number(params, "at", 0.45, where)
    length = _number(params, "length", 0.1, where)
    _no_params(params, where, ("base", "spike", "at", "length"))
    if not 0 <= at < 1 or not 0 < length <= 1 - at:
        raise ShapeError(f"{where}: at and length must lie within the run (0 <= at < at + length <= 1)")
    points = ((0.0, base), (at, spike), (at + length, base), (1.0, base))
    return Shape(
        "spike", points, "step", "level", description=f"{base:g} with a spike to {spike:g} at {at:.0%}"
    )


def _soak(params: Mapping[str, Any], where: str) -> Shape:
    ramp = _number(params, "ramp", 0.02, where)
    _no_params(params, where, ("ramp",))
    if not 0 <= ramp < 1:
        raise ShapeError(f"{where}.ramp: a fraction of the run below 1, got {ramp!r}")
    points = ((0.0, 0.0), (ramp, 1.0), (1.0, 1.0)) if ramp else ((0.0, 1.0), (1.0, 1.0))
    return Shape(
        "soak", points, "linear", "level", description=f"the peak held for hours, after a {ramp:.0%} ramp"
    )


def _constant(params: Mapping[str, Any], where: str) -> Shape:
    _no_params(params, where)
    return Shape("constant", ((0.0, 1.0), (1.0, 1.0)), "linear", "level", description="the peak throughout")


def _points(params: Mapping[str, Any], where: str) -> Shape:
    at = params.get("at")
    if not isinstance(at, Sequence) or isinstance(at, str) or not at:
        raise ShapeError(f"{where}.at: a list of [time, value] pairs")
    unit = params.get("unit", "per_minute")
    interpolate = params.get("interpolate", "linear")
    _no_params(params, where, ("at", "unit", "interpolate"))
    points = []
    is_clock = None
    for i, pair in enumerate(at):
        here = f"{where}.at[{i}]"
        if not isinstance(pair, Sequence) or isinstance(pair, str) or len(pair) != 2:
            raise ShapeError(f"{here}: expected [time, value], got {pair!r}")
        x, v = pair
        point_clock = isinstance(x, str)
        if is_clock is None:
            is_clock = point_clock
        elif is_clock != point_clock:
            raise ShapeError(f"{here}: mix of clock times and run fractions")
        x = _minutes(x, here) if point_clock else _fraction(x, here)
        if not isinstance(v, int | float) or isinstance(v, bool):
            raise ShapeError(f"{here}: value {v!r} is not a number")
        points.append((float(x), float(v)))
    try:
        return Shape("points", tuple(points), interpolate, unit, clock=bool(is_clock))
    except ShapeError as exc:
        raise ShapeError(f"{where}: {exc}") from None


def _fraction(x: Any, where: str) -> float:
    if not isinstance(x, int | float) or isinstance(x, bool) or not 0 <= x <= 1:
        raise ShapeError(f"{where}: time must be HH:MM or a fraction of the run 0..1, got {x!r}")
    return float(x)


def _number(params: Mapping[str, Any], key: str, default: float, where: str) -> float:
    value = params.get(key, default)
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0 or not math.isfinite(value):
        raise ShapeError(f"{where}.{key}: expected a number >= 0, got {value!r}")
    return float(value)


def _int(params: Mapping[str, Any], key: str, default: int, where: str, *, minimum: int) -> int:
    value = params.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ShapeError(f"{where}.{key}: expected a whole number >= {minimum}, got {value!r}")
    return value


def _no_params(params: Mapping[str, Any], where: str, known: tuple[str, ...] = ()) -> None:
    extra = sorted(set(params) - set(known) - {"type"})
    if extra:
        allowed = ", ".join(known) if known else "none"
        raise ShapeError(f"{where}.{extra[0]}: unknown key; known keys here: {allowed}")


BUILTIN = {
    "outpatient-peak": _outpatient_peak,
    "step": _step,
    "spike": _spike,
    "soak": _soak,
    "constant": _constant,
    "points": _points,
}
"""Shape types by name; `capture` shapes come from a capture store (harness.load.capture_shape)."""


def parse_shape(data: Any, where: str = "shape") -> Shape:
    """A shape from a profile: a type name, or a mapping with `type` and that type's keys."""
    if isinstance(data, str):
        data = {"type": data}
    if not isinstance(data, Mapping):
        raise ShapeError(f"{where}: expected a shape name or a mapping with `type`, got {data!r}")
    kind = data.get("type")
    if kind == "capture" and "points" in data:
        return Shape.from_json(data)
    builder = BUILTIN.get(kind) if isinstance(kind, str) else None
    if builder is None:
        raise ShapeError(f"{where}.type: unknown shape {kind!r}; known shapes: {', '.join(BUILTIN)}")
    return builder(data, where)


@dataclass(slots=True)
class Curve:
    """A shape played over `duration_s` with its peak at `peak` (requests/s or users), times `scale`.

    The shape's highest point becomes the peak: levels are relative to it (a step shape of 0.2 ... 1.0
    with a peak of 100/s runs 20/s ... 100/s)."""

    shape: Shape
    duration_s: float
    peak: float
    scale: float = 1.0
    _times: list[float] = field(init=False, repr=False)
    _cumulative: list[float] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.duration_s <= 0:
            raise ShapeError(f"duration must be positive, got {self.duration_s!r}")
        xs = [x for x, _ in self.shape.points]
        span = self.shape.end - self.shape.start
        # breakpoints in run seconds and the arrivals due at each (for the exact integral)
        self._times = [(x - self.shape.start) / span * self.duration_s for x in xs]
        if self._times[-1] < self.duration_s:  # a step shape's last step, a single point
            self._times.append(self.duration_s)
        cumulative = [0.0]
        for i in range(len(self._times) - 1):
            t0, t1 = self._times[i], self._times[i + 1]
            cumulative.append(cumulative[-1] + self._area(i, t0, t1))
        self._cumulative = cumulative

    @property
    def _factor(self) -> float:
        top = self.shape.peak
        return (self.peak * self.scale / top) if top > 1e-9 else 0.0  # a flat zero shape has no traffic

    def target(self, elapsed_s: float) -> float:
        """Requests per second (open model) or users (closed model) at this moment of the run."""
        return self.shape.value_at(elapsed_s / self.duration_s) * self._factor

    def _point_value(self, i: int) -> float:
        return self.shape.points[min(i, len(self.shape.points) - 1)][1] * self._factor

    def _area(self, i: int, t0: float, t1: float) -> float:
        """Arrivals between run times t0 and t1 inside segment i."""
        if t1 <= t0:
            return 0.0
        if self.shape.interpolate == "step":
            return self._point_value(i) * (t1 - t0)
        s0, s1 = self._times[i], self._times[i + 1]
        v0, v1 = self._point_value(i), self._point_value(i + 1)
        slope = (v1 - v0) / (s1 - s0) if s1 > s0 else 0.0
        a, b = v0 + slope * (t0 - s0), v0 + slope * (t1 - s0)
        return (a + b) / 2 * (t1 - t0)

    def due(self, elapsed_s: float) -> float:
        """Arrivals due from the start of the run until `elapsed_s` (the integral of the rate)."""
        t = min(max(elapsed_s, 0.0), self.duration_s)
        i = max(0, bisect.bisect_right(self._times, t) - 1)
        if i >= len(self._cumulative) - 1:
            return self._cumulative[-1]
        return self._cumulative[i] + self._area(i, self._times[i], t)

    @property
    def total(self) -> float:
        """Arrivals the whole run asks for (open model)."""
        return self._cumulative[-1]

    def mix_at(self, elapsed_s: float) -> Mapping[str, float] | None:
        return self.shape.mix_at(elapsed_s / self.duration_s)

    def label_at(self, elapsed_s: float) -> str:
        return self.shape.label_at(elapsed_s / self.duration_s)

    def time_for(self, amount: float) -> float | None:
        """The run time by which `amount` arrivals are due (the inverse of `due`); None past the run."""
        if amount <= 0:
            return 0.0
        cumulative = self._cumulative
        if amount > cumulative[-1]:
            return None
        i = min(bisect.bisect_left(cumulative, amount) - 1, len(cumulative) - 2)
        i = max(i, 0)
        t0 = self._times[i]
        rest = amount - cumulative[i]
        if self.shape.interpolate == "step":
            rate = self._point_value(i)
            return t0 + rest / rate if rate > 0 else self._times[i + 1]
        s1 = self._times[i + 1]
        v0, v1 = self._point_value(i), self._point_value(i + 1)
        slope = (v1 - v0) / (s1 - t0) if s1 > t0 else 0.0
        if abs(slope) < 1e-12:
            return t0 + rest / v0 if v0 > 0 else s1
        root = max(0.0, v0 * v0 + 2 * slope * rest)
        # the root of slope/2·x² + v0·x = rest, written without cancelling v0 against √root
        denominator = v0 + math.sqrt(root)
        return min(s1, t0 + 2 * rest / denominator) if denominator > 0 else s1
