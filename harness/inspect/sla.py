"""Service levels an inspection checks: per channel (and message type) thresholds from a YAML file.

```yaml
business_hours: "08:00-18:00"     # when silence counts (local time); defaults for every channel
business_days: mon-sat
silence_minutes: 30               # no exchange for this long in business hours is a breach
success_rate_min: 99.5            # percent, every channel
channels:
  his-adt:
    success_rate_min: 99.9
    p95_ms_max: 1000
    volume_min: 500               # fewer exchanges in the window is a breach (a feed that dried up)
    failovers_max: 0              # any switch to another upstream is a breach
    message_types:
      ADT^A01: {p95_ms_max: 500}
```

Top-level thresholds apply to every channel the inspection sees (and every channel listed); a channel's own
keys override them; message-type thresholds apply to that type alone. A mistyped key or value is refused with
its key path, as the proxy config is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.inspect.business_hours import BusinessHours

THRESHOLDS: dict[str, tuple[str, str, str]] = {
    "success_rate_min": ("success rate", "min", " %"),
    "p95_ms_max": ("latency p95", "max", " ms"),
    "p99_ms_max": ("latency p99", "max", " ms"),
    "sync_delay_p95_s_max": ("sync delay p95", "max", " s"),
    "volume_min": ("exchanges", "min", ""),
    "failovers_max": ("failovers", "max", ""),
}
"""Key -> (what it measures, which side is bad, unit). `failovers_max` applies to channels only."""
SETTINGS = ("business_hours", "business_days", "silence_minutes")
DEFAULT_HOURS = "08:00-18:00"
DEFAULT_DAYS = "mon-sun"
DEFAULT_SILENCE_MINUTES = 30.0


class SlaError(ValueError):
    """An SLA file that cannot be used; `where` is the key path."""

    def __init__(self, where: str, problem: str) -> None:
        self.where = where
        super().__init__(f"{where}: {problem}" if where else problem)


@dataclass(frozen=True, slots=True)
class ChannelLevels:
    thresholds: dict[str, float]
    hours: BusinessHours
    silence_s: float
    silence_breaches: bool
    """True when the SLA sets silence_minutes: then any silence is a breach, not only a finding."""
    types: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Sla:
    source: str | None
    defaults: dict[str, Any]
    channels: dict[str, dict[str, Any]]

    @property
    def named_channels(self) -> list[str]:
        return list(self.channels)

    def levels(self, channel: str) -> ChannelLevels:
        own = self.channels.get(channel, {})
        merged = {**self.defaults, **{k: v for k, v in own.items() if k != "message_types"}}
        hours = BusinessHours.parse(
            merged.get("business_hours", DEFAULT_HOURS), merged.get("business_days", DEFAULT_DAYS)
        )
        return ChannelLevels(
            thresholds={k: float(v) for k, v in merged.items() if k in THRESHOLDS},
            hours=hours,
            silence_s=float(merged.get("silence_minutes", DEFAULT_SILENCE_MINUTES)) * 60.0,
            silence_breaches=self.source is not None and "silence_minutes" in merged,
            types={
                t: {k: float(v) for k, v in levels.items()}
                for t, levels in own.get("message_types", {}).items()
            },
        )


def no_sla(
    business_hours: str = DEFAULT_HOURS,
    business_days: str = DEFAULT_DAYS,
    silence_minutes: float = DEFAULT_SILENCE_MINUTES,
) -> Sla:
    """Inspection without service levels: silences are found with these settings and breach nothing."""
    defaults = {
        "business_hours": business_hours,
        "business_days": business_days,
        "silence_minutes": silence_minutes,
    }
    parse_sla(defaults)  # the same checks as a file's
    return Sla(None, defaults, {})


def load_sla(path: str | Path, **overrides: Any) -> Sla:
    """Read and check an SLA file; `overrides` (business_hours, ...) replace the file's top-level values."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SlaError("", f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise SlaError("", f"{str(path)!r} is not UTF-8 text (byte {exc.start})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise SlaError(
            "", f"{str(path)!r} is not valid YAML{where}: {getattr(exc, 'problem', None) or exc}"
        ) from None
    if data is None:
        data = {}
    if isinstance(data, Mapping):
        data = {**data, **{k: v for k, v in overrides.items() if v is not None}}
    sla = parse_sla(data)
    return Sla(str(path), sla.defaults, sla.channels)


def parse_sla(data: Any) -> Sla:
    if not isinstance(data, Mapping):
        raise SlaError("", f"expected a mapping of settings, got {type(data).__name__}")
    defaults = _section(data, "", (*THRESHOLDS, *SETTINGS, "channels"))
    channels_raw = defaults.pop("channels", None) or {}
    if not isinstance(channels_raw, Mapping):
        raise SlaError("channels", "expected a mapping of channel name to thresholds")
    channels: dict[str, dict[str, Any]] = {}
    for name, body in channels_raw.items():
        where = f"channels.{name}"
        if body is None:
            body = {}
        if not isinstance(body, Mapping):
            raise SlaError(where, f"expected a mapping of thresholds, got {body!r}")
        section = _section(body, where, (*THRESHOLDS, *SETTINGS, "message_types"))
        types_raw = section.get("message_types") or {}
        if not isinstance(types_raw, Mapping):
            raise SlaError(f"{where}.message_types", "expected a mapping of message type to thresholds")
        types: dict[str, dict[str, Any]] = {}
        type_keys = tuple(k for k in THRESHOLDS if k != "failovers_max")
        for mtype, levels in types_raw.items():
            if not isinstance(levels, Mapping):
                raise SlaError(
                    f"{where}.message_types.{mtype}", f"expected a mapping of thresholds, got {levels!r}"
                )
            types[str(mtype)] = _section(levels, f"{where}.message_types.{mtype}", type_keys)
        section["message_types"] = types
        channels[str(name)] = section
    sla = Sla(None, defaults, channels)
    for name in ["", *channels]:  # business hours must parse wherever they are set
        try:
            sla.levels(name)
        except ValueError as exc:
            raise SlaError(f"channels.{name}" if name else "", str(exc)) from None
    return sla


def _section(data: Mapping, where: str, known: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in known:
            raise SlaError(path, f"unknown key; known keys here: {', '.join(known)}")
        if key in THRESHOLDS or key == "silence_minutes":
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise SlaError(path, f"expected a number of 0 or more, got {value!r}")
            if key == "success_rate_min" and value > 100:
                raise SlaError(path, f"a percentage is at most 100, got {value!r}")
            if key == "silence_minutes" and value == 0:
                raise SlaError(path, "expected minutes above 0")
        elif key in ("business_hours", "business_days") and not isinstance(value, str):
            raise SlaError(path, f"expected text such as '08:00-18:00' or 'mon-fri', got {value!r}")
        out[str(key)] = value
    return out


def check(report: dict, sla: Sla) -> list[dict]:
    """Every threshold breached in an inspection result, each naming channel, type, metric, limit, value."""
    breaches: list[dict] = []
    if sla.source is None:
        return breaches
    for ch in report["channels"]:
        levels = sla.levels(ch["channel"])
        _compare(ch, levels.thresholds, ch["channel"], None, breaches)
        if levels.silence_breaches and ch["silences"]:
            longest = max(s["minutes"] for s in ch["silences"])
            breaches.append(
                _breach(
                    ch["channel"],
                    None,
                    "silence_minutes",
                    "silence",
                    levels.silence_s / 60.0,
                    round(longest, 1),
                    f"{len(ch['silences'])} silence(s) in business hours, longest {longest:.0f} min "
                    f"(limit {levels.silence_s / 60.0:g} min)",
                )
            )
        by_type = {t["message_type"]: t for t in ch["message_types"]}
        for mtype, thresholds in levels.types.items():
            group = by_type.get(mtype) or {
                "exchanges": 0,
                "success_rate": None,
                "latency_ms": {},
                "sync_delay_s": {},
            }
            _compare(group, thresholds, ch["channel"], mtype, breaches)
    return breaches


def _measured(group: dict, key: str) -> float | None:
    if key == "success_rate_min":
        return group.get("success_rate")
    if key in ("p95_ms_max", "p99_ms_max"):
        return (group.get("latency_ms") or {}).get(key[:3])
    if key == "sync_delay_p95_s_max":
        return (group.get("sync_delay_s") or {}).get("p95")
    if key == "volume_min":
        return group.get("exchanges", 0)
    if key == "failovers_max":
        return group.get("failover_count", 0)
    return None  # pragma: no cover - THRESHOLDS lists every key


def _compare(group: dict, thresholds: dict[str, float], channel: str, mtype: str | None, out: list) -> None:
    for key, limit in thresholds.items():
        value = _measured(group, key)
        if value is None:
            continue  # nothing measured (no traffic, no latency): volume_min is what catches a silent feed
        what, side, unit = THRESHOLDS[key]
        if (side == "min" and value < limit) or (side == "max" and value > limit):
            sign = "<" if side == "min" else ">"
            out.append(
                _breach(
                    channel,
                    mtype,
                    key,
                    what,
                    limit,
                    value,
                    f"{what} {_fmt(value)}{unit} {sign} {'minimum' if side == 'min' else 'maximum'} "
                    f"{_fmt(limit)}{unit}",
                )
            )


def _breach(
    channel: str, mtype: str | None, key: str, what: str, limit: float, value: float, text: str
) -> dict:
    scope = f"{channel} {mtype}" if mtype else channel
    return {
        "channel": channel,
        "message_type": mtype,
        "key": key,
        "metric": what,
        "limit": limit,
        "actual": value,
        "text": f"{scope}: {text}",
    }


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:,.2f}"
