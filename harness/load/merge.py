"""Load results merged with what `harness proxy` captured of the same window.

When the load went through the proxy, each request is also an exchange in the capture store, with the
proxy's view of it: how long the upstream took (the proxy's latency is from the request reaching the
proxy to the reply leaving the upstream), the outcome (ok, nak, timeout, upstream_down ...) and which
upstream answered (a primary/backup pair shows its split). Per message type this gives end-to-end
latency (locust's) beside upstream latency (the proxy's) — the difference is the proxy and the network —
and NAK and timeout counts as the proxy saw them; the counts of both sides should agree.

Exchanges are taken from the run's window (its start to its end, plus a short grace for the last
commits) on the channels the load's targets point at when the proxy config is known. MLLP messages
carry the run's tag in MSH-10, so on MLLP channels only this run's messages are counted even when other
senders share the channel; exchanges of others are reported as such.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.exchange import iso_time, percentile
from harness.store import ExchangeFilter, Store, StoreError

__all__ = ["MergeError", "merge"]

GRACE_S = 2.0


class MergeError(RuntimeError):
    """The capture store could not be read."""


def _spread(values: list[float]) -> dict[str, float | None]:
    values.sort()
    return {
        "p50_ms": percentile(values, 50),
        "p95_ms": percentile(values, 95),
        "p99_ms": percentile(values, 99),
    }


def _read(
    store_path: Path, channels: list[str] | None, since: float, until: float, tag: str
) -> dict[str, Any]:
    names: dict[str, dict[str, Any]] = {}
    outcomes: Counter = Counter()
    upstreams: Counter = Counter()
    others: Counter = Counter()
    prefix = f"L{tag}"
    flt = ExchangeFilter(channel=channels or None, since=since, until=until, replays=False)
    with Store(store_path, create=False) as store:
        for ex in store.query(flt, bodies=False):
            if ex.protocol == "mllp" and not (ex.control_id or "").startswith(prefix):
                others[ex.channel] += 1
                continue
            name = ex.message_type or "(none)"
            entry = names.setdefault(
                name,
                {
                    "captured": 0,
                    "outcomes": Counter(),
                    "upstreams": Counter(),
                    "latencies": [],
                    "kind": ex.kind,
                },
            )
            entry["captured"] += 1
            entry["outcomes"][ex.outcome] += 1
            entry["upstreams"][ex.upstream_addr or "(none)"] += 1
            if ex.latency_ms is not None:
                entry["latencies"].append(ex.latency_ms)
            outcomes[ex.outcome] += 1
            upstreams[ex.upstream_addr or "(none)"] += 1
    return {"names": names, "outcomes": outcomes, "upstreams": upstreams, "others": others}


def merge(
    results: Mapping[str, Any],
    store_path: str | Path,
    channels: list[str] | None = None,
    *,
    settle_s: float = 3.0,
) -> dict[str, Any]:
    """The `proxy` section of a load summary (see the module docstring)."""
    path = Path(store_path)
    if not path.is_file():
        raise MergeError(f"capture store {path} does not exist")
    since = float(results["started_at"]) - 1.0
    until = float(results["ended_at"]) + GRACE_S
    expected = results["requests"]
    deadline = time.monotonic() + settle_s
    while True:
        try:
            seen = _read(path, channels, since, until, results["run_tag"])
        except (StoreError, OSError) as exc:
            raise MergeError(f"capture store {path}: {exc}") from None
        captured = sum(e["captured"] for e in seen["names"].values())
        if captured >= expected or time.monotonic() >= deadline:
            break
        time.sleep(0.25)  # a `fast` channel commits within 100 ms; durable ones already have it all
    by_name = {}
    load_names = results.get("by_name", {})
    for name in sorted(set(seen["names"]) | set(load_names)):
        entry = seen["names"].get(name)
        load = load_names.get(name, {})
        row: dict[str, Any] = {
            "requests": load.get("requests", 0),
            "failures": load.get("failures", 0),
            "e2e_p50_ms": load.get("p50_ms"),
            "e2e_p95_ms": load.get("p95_ms"),
            "e2e_p99_ms": load.get("p99_ms"),
            "captured": 0,
            "outcomes": {},
            "upstreams": {},
            "upstream_p50_ms": None,
            "upstream_p95_ms": None,
            "upstream_p99_ms": None,
        }
        if entry is not None:
            spread = _spread(entry["latencies"])
            row.update(
                captured=entry["captured"],
                outcomes=dict(entry["outcomes"].most_common()),
                upstreams=dict(entry["upstreams"].most_common()),
                upstream_p50_ms=spread["p50_ms"],
                upstream_p95_ms=spread["p95_ms"],
                upstream_p99_ms=spread["p99_ms"],
            )
        row["naks"] = row["outcomes"].get("nak", 0)
        row["timeouts"] = row["outcomes"].get("timeout", 0)
        row["matches"] = row["captured"] == row["requests"]
        by_name[name] = row
    return {
        "store": str(path),
        "channels": channels,
        "window": [iso_time(since), iso_time(until)],
        "captured": captured,
        "requests": expected,
        "counts_match": captured == expected and all(r["matches"] for r in by_name.values()),
        "outcomes": dict(seen["outcomes"].most_common()),
        "upstreams": dict(seen["upstreams"].most_common()),
        "other_senders": dict(seen["others"]),
        "by_name": by_name,
    }
