"""One inspection of a capture store: the window, the period before it, the service levels, the verdict.

`inspect_store` reads (through `scan`), computes (`Inspection`) and judges (`sla.check`);
`summarize_exchanges` gives `capture summary --html` the same figures for any selection the store's query API
can make.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any

from harness import __version__
from harness.exchange import Exchange, iso_time
from harness.inspect.inspection import ChannelSettings, Inspection
from harness.inspect.message_time import MessageClock
from harness.inspect.scan import exchange_rows, scan
from harness.inspect.sla import Sla, check, no_sla


@dataclass(slots=True)
class InspectOptions:
    since: float
    until: float
    channels: Sequence[str] | None = None
    live_only: bool = True
    sla: Sla = field(default_factory=no_sla)
    upstreams: dict[str, list[str]] = field(default_factory=dict)
    """Channel -> its configured upstream list (primary first), from the proxy config; roles need it."""
    compare_previous: bool = False
    message_tz: tzinfo | None = None
    """The zone of message times without a UTC offset (the machine's when None)."""
    top: int = 10


def settings_for(options_sla: Sla, upstreams: dict[str, list[str]]):
    def settings(channel: str) -> ChannelSettings:
        levels = options_sla.levels(channel)
        return ChannelSettings(levels.hours, levels.silence_s, tuple(upstreams.get(channel, ())))

    return settings


def inspect_store(store: Any, options: InspectOptions) -> dict[str, Any]:
    """The inspection report as plain data (what `--report-json` writes), with `verdict` and breaches."""
    started = time.perf_counter()
    settings = settings_for(options.sla, options.upstreams)
    expected = [c for c in options.sla.named_channels if not options.channels or c in options.channels]
    expected += [c for c in options.channels or () if c not in expected]
    result = _one(store, options, options.since, options.until, settings, expected)
    if options.compare_previous:
        span = options.until - options.since
        before = _one(store, options, options.since - span, options.since, settings, expected)
        _attach_trend(result, before)
    breaches = check(result, options.sla)
    result["sla"] = {"file": options.sla.source, "breaches": breaches}
    result["verdict"] = ("FAIL" if breaches else "PASS") if options.sla.source else "NO SLA"
    result["run"] = {
        "report": "inspection",
        "generated": iso_time(time.time()),
        "harness_version": __version__,
        "store": str(getattr(store, "path", store)),
        "channels": list(options.channels) if options.channels else None,
        "live_only": options.live_only,
        "compare_previous": options.compare_previous,
        "elapsed_s": round(time.perf_counter() - started, 3),
    }
    return result


def _one(
    store: Any, options: InspectOptions, since: float, until: float, settings, expected
) -> dict[str, Any]:
    inspection = Inspection(MessageClock(options.message_tz), top=options.top)
    inspection.feed(scan(store, since, until, options.channels, live_only=options.live_only))
    return inspection.result(since, until, settings, expected=expected)


def summarize_exchanges(
    exchanges: Iterable[Exchange],
    *,
    since: float | None,
    until: float | None,
    selection: str,
    store: str,
    message_tz: tzinfo | None = None,
) -> dict[str, Any]:
    """Inspection figures for an ad-hoc selection (no service levels, no expected channels)."""
    inspection = Inspection(MessageClock(message_tz))
    inspection.feed(exchange_rows(exchanges))
    first, last = inspection.span()
    lo = since if since is not None else (first if first is not None else time.time())
    hi = until if until is not None else (last + 0.001 if last is not None else lo + 1)
    result = inspection.result(lo, max(hi, lo + 1), settings_for(no_sla(), {}))
    result["sla"] = {"file": None, "breaches": []}
    result["verdict"] = "NO SLA"
    result["run"] = {
        "report": "summary",
        "generated": iso_time(time.time()),
        "harness_version": __version__,
        "store": store,
        "selection": selection,
    }
    return result


def describe_filter(flt: Any) -> str:
    """An ExchangeFilter in words, for the report's header."""
    parts = []
    for label, value in (
        ("channel", flt.channel),
        ("since", flt.since),
        ("until", flt.until),
        ("type", flt.message_type),
        ("outcome", flt.outcomes),
        ("kind", flt.kind),
        ("replay run", flt.run_id),
    ):
        if value is not None:
            shown = value if isinstance(value, str | int | float) else ", ".join(str(v) for v in value)
            parts.append(f"{label} {shown}")
    for path, value in (flt.path_values or {}).items():
        parts.append(f"{path}={value}")
    return "; ".join(parts) or "every exchange"


def _attach_trend(result: dict[str, Any], before: dict[str, Any]) -> None:
    """Each channel and type gets `previous` (the same figures one window earlier) and `change`."""
    result["previous_window"] = before["window"]
    old = {ch["channel"]: ch for ch in before["channels"]}
    for ch in result["channels"]:
        prev = old.get(ch["channel"])
        ch["previous"] = _headline(prev) if prev else None
        ch["change"] = _change(_headline(ch), ch["previous"])
        prev_types = {t["message_type"]: t for t in prev["message_types"]} if prev else {}
        for t in ch["message_types"]:
            p = prev_types.get(t["message_type"])
            t["previous"] = _headline(p) if p else None
            t["change"] = _change(_headline(t), t["previous"])
    result["totals"]["previous"] = _headline(before["totals"])
    result["totals"]["change"] = _change(_headline(result["totals"]), result["totals"]["previous"])


def _headline(group: dict[str, Any]) -> dict[str, Any]:
    latency = group.get("latency_ms") or {}
    return {
        "exchanges": group["exchanges"],
        "success_rate": group["success_rate"],
        "failures": group["failures"],
        "p95_ms": latency.get("p95"),
    }


def _change(now: dict[str, Any], before: dict[str, Any] | None) -> dict[str, Any] | None:
    if before is None:
        return None

    def pct(a: float | None, b: float | None) -> float | None:
        if a is None or b is None or b == 0:
            return None
        return round(100.0 * (a - b) / b, 1)

    rate = None
    if now["success_rate"] is not None and before["success_rate"] is not None:
        rate = round(now["success_rate"] - before["success_rate"], 3)
    return {
        "exchanges_pct": pct(now["exchanges"], before["exchanges"]),
        "success_rate_points": rate,
        "p95_pct": pct(now["p95_ms"], before["p95_ms"]),
    }
