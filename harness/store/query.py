"""Which exchanges a query returns: `ExchangeFilter`, times as people write them, the WHERE clause."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from harness.exchange import Exchange
from harness.store.error import StoreError

_ORDERS = {
    "id": "id ASC",
    "-id": "id DESC",
    "started_at": "started_at ASC, id ASC",
    "-started_at": "started_at DESC, id DESC",
}
_FETCH = 500

_RELATIVE = re.compile(r"^([+-]?)(\d+(?:\.\d+)?)\s*(s|m|h|d|w)$", re.IGNORECASE)
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_time(text: str | float, *, now: float | None = None) -> float:
    """Epoch seconds from ISO 8601 (naive = local time, or with Z/offset), `now`, or relative `-2h`, `-30m`.

    A relative time without a sign means that long ago, the usual reading of `--since 2h`.
    """
    if isinstance(text, int | float):
        return float(text)
    value = text.strip()
    now = time.time() if now is None else now
    if value.lower() == "now":
        return now
    rel = _RELATIVE.match(value)
    if rel:
        sign, amount, unit = rel.groups()
        delta = float(amount) * _UNIT_S[unit.lower()]
        return now + delta if sign == "+" else now - delta
    try:
        parsed = datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value)
    except ValueError:
        raise ValueError(
            f"time {text!r}: expected ISO 8601 (2026-11-25T14:30, with Z or +08:00 for a zone; "
            "local time without) or relative like -2h, -30m, -15s, -1d"
        ) from None
    return parsed.timestamp()


@dataclass(slots=True)
class ExchangeFilter:
    """Which exchanges a query returns. Every field left None matches everything.

    SQL does the column filters; `path_values` (terse path -> value, `re:` for a regex searched in the
    value) is evaluated in Python on the parsed request after them, so combine it with column filters
    when the store is large.
    """

    channel: str | Sequence[str] | None = None
    since: float | str | None = None
    until: float | str | None = None
    message_type: str | Sequence[str] | None = None
    """'ADT^A01' matches exactly; 'ADT' (no '^') matches every ADT trigger."""
    control_ids: Sequence[str] | None = None
    outcomes: str | Sequence[str] | None = None
    kind: str | Sequence[str] | None = None
    run_id: int | None = None
    replays: bool | None = None
    """True: only exchanges of replay runs; False: only live traffic (exchanges of no replay run:
    captured by the proxy, imported); None: both."""
    plus_runs: Sequence[int] | None = None
    """With replays=False: the exchanges of these runs as well (live traffic plus replay runs 3 and 5)."""
    path_values: Mapping[str, str] | None = None
    ids: Sequence[int] | None = None
    proxy: str | Sequence[str] | None = None
    """The proxy instance(s) that captured the exchanges (a central store holds several)."""
    limit: int | None = None
    order: str = "id"
    """'id', '-id', 'started_at' or '-started_at' ('-' = newest first)."""


def _as_list(value: str | Sequence[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


OneOf = Callable[[str, Sequence[Any], str], tuple[str, Any]]
"""A backend's `column is one of values` clause: (column, values, SQL type) -> (clause, one parameter)."""


def sqlite_one_of(column: str, values: Sequence[Any], cast: str) -> tuple[str, Any]:
    return f"{column} IN (SELECT value FROM json_each(?))", json.dumps(list(values))


def where_clause(flt: ExchangeFilter, in_list: OneOf = sqlite_one_of) -> tuple[str, list[Any]]:
    """The WHERE clause (with `?` parameters) of a filter's column conditions, and its parameters."""
    clauses: list[str] = []
    params: list[Any] = []

    def one_of(column: str, values: Sequence[Any], cast: str = "text") -> None:
        clause, param = in_list(column, values, cast)
        clauses.append(clause)
        params.append(param)

    if flt.channel is not None:
        one_of("channel", _as_list(flt.channel))
    if flt.since is not None:
        clauses.append("started_at >= ?")
        params.append(parse_time(flt.since))
    if flt.until is not None:
        clauses.append("started_at <= ?")
        params.append(parse_time(flt.until))
    if flt.message_type is not None:
        parts = []
        for code in _as_list(flt.message_type):
            if "^" in code:
                parts.append("message_type = ?")
                params.append(code)
            else:
                parts.append("(message_type = ? OR substr(message_type, 1, ?) = ?)")
                params.extend([code, len(code) + 1, code + "^"])
        clauses.append("(" + " OR ".join(parts or ["1 = 0"]) + ")")
    if flt.control_ids is not None:
        one_of("control_id", [str(c) for c in flt.control_ids])
    if flt.outcomes is not None:
        one_of("outcome", _as_list(flt.outcomes))
    if flt.kind is not None:
        one_of("kind", _as_list(flt.kind))
    if flt.run_id is not None:
        clauses.append("run_id = ?")
        params.append(int(flt.run_id))
    replay_run = "run_id IN (SELECT id FROM runs WHERE kind = 'replay')"
    if flt.replays is True:
        clauses.append(f"(original_id IS NOT NULL OR {replay_run})")
    elif flt.replays is False:
        live = f"(original_id IS NULL AND (run_id IS NULL OR NOT {replay_run}))"
        if flt.plus_runs:
            clause, param = in_list("run_id", [int(r) for r in flt.plus_runs], "bigint")
            live = f"({live} OR {clause})"
            params.append(param)
        clauses.append(live)
    if flt.ids is not None:
        one_of("id", [int(i) for i in flt.ids], "bigint")
    if flt.proxy is not None:
        one_of("proxy", _as_list(flt.proxy))
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def _path_matcher(path_values: Mapping[str, str]) -> Callable[[Exchange], bool]:
    """A predicate over an exchange's parsed request; bad regexes and paths fail here, not mid-query."""
    try:
        from harness.hl7v2.message import Message
    except ImportError as exc:  # pragma: no cover - the module ships with the package
        raise StoreError(f"terse path filters need harness.hl7v2.message: {exc}") from exc

    tests: list[tuple[str, Callable[[str | None], bool]]] = []
    for path, expected in path_values.items():
        if not path or not str(path).strip():
            raise StoreError("path filter: empty terse path")
        if expected.startswith("re:"):
            try:
                pattern = re.compile(expected[3:])
            except re.error as exc:
                raise StoreError(
                    f"path filter {path}: bad regular expression {expected[3:]!r}: {exc}"
                ) from None
            tests.append((path, lambda v, p=pattern: v is not None and p.search(v) is not None))
        else:
            tests.append((path, lambda v, e=expected: v == e))
    try:
        probe = Message.parse(b"MSH|^~\\&|A|B|C|D|20260101000000||ADT^A01|1|P|2.5\rPID|1||1\r")
    except Exception:  # the probe only finds bad paths early; rows are still tested one by one
        probe = None
    for path, _ in tests if probe is not None else ():
        try:
            probe.get(path)
        except Exception as exc:  # the path's syntax, found before any row is read
            raise StoreError(f"path filter: bad terse path {path!r}: {exc}") from None

    def matches(ex: Exchange) -> bool:
        try:
            msg = Message.parse(ex.request, ex.charset)
        except Exception:  # unparseable requests cannot match a path
            return False
        for path, test in tests:
            try:
                value = msg.get(path)
            except Exception:
                return False
            if not test(value):
                return False
        return True

    return matches
