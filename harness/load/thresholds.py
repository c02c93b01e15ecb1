"""SLA thresholds for a load run: what must hold for it to pass, and whether it did (sans-IO).

From a profile (``thresholds:``, with ``by_type:`` for one message type) or the command line
(``--threshold p95_ms=500``, ``--threshold 'ADT^A04:p99_ms=800'``; the command line wins for the same
key and type). Keys:

=============  ==========================================================================
p50_ms ...     p50_ms, p90_ms, p95_ms, p99_ms, max_ms: latency at most this many milliseconds
error_rate     failures / requests at most this (0.01 or "1%")
min_rate       requests per second over the run at least this; "90%": the open model started at
               least 90% of the requests its target asked for (the rest stayed in the backlog)
max_backlog    open model: arrivals waiting for a free connection at most this many at once
=============  ==========================================================================

A threshold on a message type that saw no requests is not judged (shown as such), since a profile
may list types a run does not send; everything else passes or fails, and the run's exit code is 1
when any failed, naming it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["KEYS", "Threshold", "ThresholdError", "evaluate", "merge", "parse_flag", "parse_section"]

LATENCY = ("p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms")
KEYS = (*LATENCY, "error_rate", "min_rate", "max_backlog")


class ThresholdError(ValueError):
    """A threshold that cannot be read; the message names where."""


@dataclass(frozen=True, slots=True)
class Threshold:
    key: str
    limit: float
    scope: str | None = None
    """A request name (message type, infno, interaction, action); None for the whole run."""
    relative: bool = False
    """min_rate given as a share of the open model's target."""

    def describe(self) -> str:
        where = f"{self.scope}: " if self.scope else ""
        if self.key in LATENCY:
            return f"{where}{self.key[:-3]} <= {self.limit:g} ms"
        if self.key == "error_rate":
            return f"{where}error rate <= {self.limit * 100:g}%"
        if self.key == "max_backlog":
            return f"{where}backlog <= {self.limit:g}"
        if self.relative:
            return f"{where}rate >= {self.limit * 100:g}% of the target"
        return f"{where}rate >= {self.limit:g}/s"

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "limit": self.limit, "scope": self.scope, "relative": self.relative}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Threshold:
        return cls(data["key"], float(data["limit"]), data.get("scope"), bool(data.get("relative")))


def _value(key: str, raw: Any, where: str, scope: str | None) -> Threshold:
    if key not in KEYS:
        raise ThresholdError(f"{where}: unknown threshold {key!r}; known: {', '.join(KEYS)}")
    relative = False
    text = raw.strip() if isinstance(raw, str) else raw
    if isinstance(text, str) and text.endswith("%"):
        if key not in ("error_rate", "min_rate"):
            raise ThresholdError(f"{where}: {key} takes a number, not a percentage ({raw!r})")
        try:
            number = float(text[:-1]) / 100.0
        except ValueError:
            raise ThresholdError(f"{where}: {raw!r} is not a percentage") from None
        relative = key == "min_rate"
    else:
        try:
            number = float(text)
        except (TypeError, ValueError):
            raise ThresholdError(f"{where}: {raw!r} is not a number") from None
    if not math.isfinite(number) or number < 0:
        raise ThresholdError(f"{where}: {raw!r} must be a number >= 0")
    if key == "error_rate" and number > 1:
        raise ThresholdError(f"{where}: error_rate is a fraction (0.01) or a percentage ('1%'), got {raw!r}")
    if relative and scope is not None:
        raise ThresholdError(f"{where}: a min_rate share of the target applies to the whole run only")
    return Threshold(key, number, scope, relative)


def parse_section(data: Any, where: str = "thresholds") -> list[Threshold]:
    """The profile's ``thresholds:`` mapping (with ``by_type: {NAME: {key: value}}``)."""
    if data is None:
        return []
    if not isinstance(data, Mapping):
        raise ThresholdError(f"{where}: expected a mapping of threshold keys to limits")
    out = []
    for key, raw in data.items():
        if key == "by_type":
            if not isinstance(raw, Mapping):
                raise ThresholdError(f"{where}.by_type: expected message type -> thresholds")
            for name, section in raw.items():
                if not isinstance(section, Mapping):
                    raise ThresholdError(f"{where}.by_type.{name}: expected a mapping of threshold keys")
                for k, v in section.items():
                    out.append(_value(str(k), v, f"{where}.by_type.{name}.{k}", str(name)))
            continue
        out.append(_value(str(key), raw, f"{where}.{key}", None))
    return out


def parse_flag(text: str) -> Threshold:
    """``KEY=VALUE`` or ``NAME:KEY=VALUE`` (NAME may hold ^ and spaces: 'create Patient:p95_ms=200')."""
    head, sep, value = text.rpartition("=")
    if not sep or not head:
        raise ThresholdError(f"--threshold {text!r}: expected KEY=VALUE or NAME:KEY=VALUE")
    scope, colon, key = head.rpartition(":")
    return _value(key.strip(), value, f"--threshold {text!r}", scope.strip() if colon else None)


def merge(profile: list[Threshold], flags: list[Threshold]) -> list[Threshold]:
    """The profile's thresholds with the command line's replacing those of the same key and scope."""
    given = {(t.key, t.scope) for t in flags}
    return [t for t in profile if (t.key, t.scope) not in given] + flags


def _actual(t: Threshold, stats: Mapping[str, Any], results: Mapping[str, Any]) -> float | None:
    if t.key in LATENCY:
        return stats.get(t.key)
    if t.key == "error_rate":
        return stats.get("error_rate")
    if t.key == "max_backlog":
        return (results.get("open") or {}).get("backlog_max")
    if t.relative:
        op = results.get("open") or {}
        return op["started"] / op["scheduled"] if op.get("scheduled") else None
    return stats.get("rate")


def evaluate(thresholds: list[Threshold], results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each threshold with its actual value and `passed` (True, False, or None when not judged)."""
    out = []
    for t in thresholds:
        stats = results["totals"] if t.scope is None else results["by_name"].get(t.scope)
        entry = {**t.to_json(), "text": t.describe(), "actual": None, "passed": None, "note": ""}
        if not stats or not stats.get("requests"):
            entry["note"] = f"no {t.scope} requests" if t.scope else "no requests"
            if t.scope is None:
                entry["passed"] = False
            out.append(entry)
            continue
        actual = _actual(t, stats, results)
        entry["actual"] = actual
        if actual is None:
            entry["note"] = "not measured in this run" if t.key != "max_backlog" else "not an open-model run"
            entry["passed"] = False if t.key != "max_backlog" else None
        elif t.key == "min_rate":
            entry["passed"] = actual >= t.limit
        else:
            entry["passed"] = actual <= t.limit
        out.append(entry)
    return out


def breached(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in results if r["passed"] is False]
