"""The rows an inspection reads: a few columns of each exchange, not whole exchanges.

An inspection over a week of a busy hospital reads a million exchanges; building each as an `Exchange` with
its bodies and JSON would cost more than everything the inspection does with it. `scan` reads a SQLite capture
store with one SELECT of the columns it needs: the request's first bytes (for the message time), and the
reply's first bytes and the metadata only for failed exchanges (for what went wrong). Any other store, and
selections the SELECT cannot express (terse-path filters, replay runs), go through the store's public query
API (`exchange_rows`), which gives the same rows.

The SELECT's WHERE is on `started_at` and, with channels, on `channel`: the store's `(channel, started_at)`
and `(started_at)` indexes serve it, so `--since 30m --channel C` reads only those 30 minutes. (Reading a
window as one stretch of the table by row id was measured and gained nothing: the time goes to turning
columns into Python values, not to the index.)
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from harness.exchange import Exchange
from harness.inspect.message_time import HEAD_BYTES

REPLY_BYTES = 2048
"""How much of a failed exchange's reply is read for its text (MSA-3, ERR)."""
SUCCESS = ("ok", "no_ack_expected", "pending")
"""Outcomes whose reply and metadata the scan does not read (nothing went wrong to explain)."""

# Row layout: a plain tuple, in this order.
ID, CHANNEL, KIND, STARTED, LATENCY, OUTCOME, ACK, TYPE = range(8)
UPSTREAM, STATUS, ERROR, HEAD, REPLY, META, CHARSET = range(8, 15)

_QUIET = ", ".join(f"'{o}'" for o in SUCCESS)
_SELECT = f"""SELECT id, channel, kind, started_at, latency_ms, outcome,
    CASE WHEN outcome IN ({_QUIET}) THEN NULL ELSE ack_code END, message_type,
    upstream_addr, status, error, substr(request, 1, {HEAD_BYTES}),
    CASE WHEN outcome IN ({_QUIET}) THEN NULL ELSE substr(response, 1, {REPLY_BYTES}) END,
    CASE WHEN outcome IN ({_QUIET}) THEN NULL ELSE meta END,
    charset
    FROM exchanges WHERE started_at >= ? AND started_at < ?"""
_FETCH = 2000


def scan(
    store: Any, since: float, until: float, channels: Sequence[str] | None = None, *, live_only: bool = True
) -> Iterator[tuple]:
    """Rows of the exchanges started in [since, until), on `channels` (all when None), in no set order.

    `live_only` leaves out replayed exchanges (those with an original), as inspections of live traffic must.
    """
    path = getattr(store, "path", None)
    if isinstance(path, Path) and _is_sqlite(path):
        return _sqlite_rows(path, since, until, channels, live_only)
    from harness.store import ExchangeFilter

    flt = ExchangeFilter(
        channel=list(channels) if channels else None,
        since=since,
        until=until,
        replays=False if live_only else None,
    )
    return (row for row in exchange_rows(store.query(flt)) if row[STARTED] < until)


def exchange_rows(exchanges: Iterable[Exchange]) -> Iterator[tuple]:
    """The same rows from exchanges read through the store's public API (any selection, any backend)."""
    for ex in exchanges:
        failed = ex.outcome not in SUCCESS
        head = bytes(ex.request[:HEAD_BYTES]) if ex.request else None
        reply = bytes(ex.response[:REPLY_BYTES]) if failed and ex.response is not None else None
        meta = json.dumps(ex.meta, ensure_ascii=False) if failed and ex.meta else None
        yield (
            ex.id, ex.channel, ex.kind, ex.started_at, ex.latency_ms, ex.outcome, ex.ack_code,
            ex.message_type, ex.upstream_addr, ex.status, ex.error, head, reply, meta, ex.charset,
        )  # fmt: skip


def _is_sqlite(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(16) == b"SQLite format 3\x00"
    except OSError:
        return False


def select(
    since: float, until: float, channels: Sequence[str] | None, live_only: bool
) -> tuple[str, list[Any]]:
    """The SELECT the SQLite scan runs, and its parameters."""
    sql = _SELECT
    params: list[Any] = [since, until]
    if channels:
        sql += f" AND channel IN ({', '.join('?' * len(channels))})"
        params.extend(channels)
    if live_only:
        # `+` keeps SQLite off the original_id index: every captured row has NULL there, so that index would
        # be a slower full scan than the time index
        sql += " AND +original_id IS NULL"
    return sql, params


def _sqlite_rows(
    path: Path, since: float, until: float, channels: Sequence[str] | None, live_only: bool
) -> Iterator[tuple]:
    sql, params = select(since, until, channels, live_only)
    conn = sqlite3.connect(path, timeout=30.0)
    try:
        conn.execute("PRAGMA query_only = 1")
        cursor = conn.execute(sql, params)
        while rows := cursor.fetchmany(_FETCH):
            yield from rows
    finally:
        conn.close()
