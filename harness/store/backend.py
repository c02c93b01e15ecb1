"""The store interface: what every capture store offers, whichever database holds it.

`Store(target)` opens the store `target` names (see `harness.store.location`): a SQLite file
(`SQLiteStore`, the embedded default) or a PostgreSQL database (`PostgresStore`, the central store of
several proxies). Both keep the same schema (`harness.store.schema`), the same row codec and the same
query semantics, so every command that reads or writes a store works on either. The SQL shared here
is written once with `?` parameters; a backend whose driver spells them otherwise translates it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.exchange import Exchange
from harness.store.error import StoreError, StoreUnavailable  # noqa: F401 - importable from here too

RUN_KINDS = ("capture", "replay", "compare")
RUN_COLUMNS = ("id", "kind", "created_at", "finished_at", "params", "target", "status", "summary")
_RUN_SELECT = f"SELECT {', '.join(RUN_COLUMNS)} FROM runs"
_UNREAD = object()
PRUNE_BATCH = 5000
"""Rows `prune` deletes per transaction where it cannot drop whole partitions."""


@dataclass(slots=True)
class Run:
    """A capture session, replay or comparison that groups exchanges (exchanges.run_id)."""

    id: int
    kind: str
    created_at: float
    finished_at: float | None = None
    params: dict[str, Any] = field(default_factory=dict)
    target: str | None = None
    status: str = "running"
    summary: dict[str, Any] | None = None


@dataclass(slots=True)
class PruneResult:
    """What `Store.prune` removed: whole partitions (PostgreSQL) and rows deleted one by one."""

    before: float
    partitions: list[str] = field(default_factory=list)
    rows_in_partitions: int = 0
    rows_deleted: int = 0

    @property
    def exchanges(self) -> int:
        return self.rows_in_partitions + self.rows_deleted


_BACKENDS: dict[str, Callable[[], type[Store]]] = {}


def register_backend(kind: str, load: Callable[[], type[Store]]) -> None:
    """Make `Store(target)` open targets of `kind` (a `StoreLocation.kind`) with the class `load()` returns.

    The package (harness/store/__init__.py) registers SQLite and PostgreSQL, so this interface never
    imports its own implementations; `load` lets PostgreSQL's driver be imported only when used.
    """
    _BACKENDS[kind] = load


class Store:
    """A capture store: add and read exchanges, create and finish runs.

    `Store(target, create=True, synchronous="FULL")` opens the backend `target` names. One connection
    for one thread (SQLite) or one session (PostgreSQL); the proxy writes through `CaptureWriter`.
    """

    kind = "abstract"
    path: Path | str
    """The SQLite file, or the PostgreSQL URL: what messages name and what `CaptureWriter` is given."""

    def __new__(cls, target: Any = None, *args: Any, **kwargs: Any) -> Store:
        if cls is Store:
            from harness.store.location import parse_location

            kind = parse_location(target).kind
            if kind not in _BACKENDS:
                raise StoreError(f"no store backend for {kind} (known: {', '.join(sorted(_BACKENDS))})")
            cls = _BACKENDS[kind]()
        return super().__new__(cls)

    def __enter__(self) -> Store:
        return self

    # -- encryption at rest (harness.store.crypto) ---------------------------------------------------

    keys: Any = None
    """The keys this store opens sealed bodies with (`crypto.Keyring`)."""
    _key_marker: Any = _UNREAD

    def _use_keys(self, keys: Any, *, check: bool = True) -> None:
        """Take the keys given (else the process's: command line, then environment) and, when `check`
        (the store is reachable now), refuse keys that cannot be this store's."""
        from harness.store import crypto

        self.keys = keys if keys is not None else crypto.default_keyring()
        if self.kind == "sqlite":
            self.keys.check_apart(Path(self.path))
        if check:
            self._check_keys()

    def _check_keys(self) -> None:
        marker = self.encryption_key_id()
        if marker is not None and self.keys and marker not in self.keys:
            raise self._key_error(marker)

    def encryption_key_id(self) -> str | None:
        """The id of the key this store seals new rows with; None: not encrypted (read once)."""
        if self._key_marker is _UNREAD:
            row = self._execute("SELECT value FROM store_info WHERE key = 'key_id'").fetchone()
            self._key_marker = row[0] if row else None
        return self._key_marker

    def _key_error(self, marker: str) -> StoreError:
        from harness.store.crypto import HOW_TO_GIVE, StoreKeyError

        if not self.keys:
            return StoreKeyError(
                f"capture store {self.path} is encrypted (key id {marker}); give its key with {HOW_TO_GIVE}"
            )
        given = ", ".join(self.keys.keys)
        return StoreKeyError(
            f"capture store {self.path} is encrypted with key {marker}, and the key given ({given}) is not "
            f"it (another key file, or the store was rekeyed); give its key with {HOW_TO_GIVE}"
        )

    def sealing_key(self) -> Any:
        """The key new rows are sealed with (`crypto.StoreKey`), None when the store keeps bodies in
        clear. A store not yet encrypted becomes so with the first key of a keyring configured to
        encrypt (`Keyring.encrypts`); an encrypted one is never written in clear (StoreKeyError when
        its key is not held)."""
        marker = self.encryption_key_id()
        if marker is None:
            first = self.keys.first if self.keys and self.keys.encrypts else None
            if first is None:
                return None
            self._execute(
                "INSERT INTO store_info (key, value) VALUES ('key_id', ?), ('key_algorithm', ?)"
                " ON CONFLICT (key) DO NOTHING",
                (first.id, first.algorithm),
            )
            self._key_marker = _UNREAD  # another writer may have set it first
            marker = self.encryption_key_id()
        key = self.keys.get(marker) if self.keys else None
        if key is None:
            raise self._key_error(marker)
        return key

    def set_key(self, key: Any) -> None:
        """Make `key` the one new rows are sealed with (what a rotation does first)."""
        self.mark_key(key.id, key.algorithm)
        self.keys.add(key)

    def mark_key(self, kid: str, algorithm: str | None) -> None:
        """Record `kid` as the key new rows are sealed with (a copy gives its target the source's)."""
        with self._transaction():
            for name, value in (("key_id", kid), ("key_algorithm", algorithm)):
                if value is not None:
                    self._execute(
                        "INSERT INTO store_info (key, value) VALUES (?, ?)"
                        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                        (name, value),
                    )
        self._key_marker = kid

    def key_algorithm(self) -> str | None:
        row = self._execute("SELECT value FROM store_info WHERE key = 'key_algorithm'").fetchone()
        return row[0] if row else None

    def _opener(self, columns: Sequence[str]) -> Callable[[Sequence[Any]], Sequence[Any]]:
        from harness.store.codec import RowOpener

        return RowOpener(columns, self.keys, str(self.path))

    def _need_keys(self) -> None:
        """Before bodies are read: an encrypted store whose key is not held fails here, before any row."""
        marker = self.encryption_key_id()
        if marker is not None and (not self.keys or marker not in self.keys):
            raise self._key_error(marker)

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what each backend provides ------------------------------------------------------------------

    def close(self) -> None:
        raise NotImplementedError

    @property
    def schema_version(self) -> int:
        raise NotImplementedError

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement (autocommit); a cursor with fetchone/fetchall/rowcount."""
        raise NotImplementedError

    def _insert_id(self, sql: str, params: Sequence[Any]) -> int:
        """Run an INSERT of one row and return its new id."""
        raise NotImplementedError

    def _transaction(self) -> AbstractContextManager[Any]:
        """One write transaction: committed on a clean exit, rolled back on an exception."""
        raise NotImplementedError

    def _stream_rows(self, sql: str, params: Sequence[Any]) -> Iterator[list[tuple]]:
        """The rows of a query in chunks, never the whole result in memory."""
        raise NotImplementedError

    def _one_of(self, column: str, values: Sequence[Any], cast: str) -> tuple[str, Any]:
        """A clause `column is one of values` and its one parameter."""
        raise NotImplementedError

    def commit_rows(
        self, rows: list[tuple | BaseException], dedupe: bool = False
    ) -> list[int | BaseException]:
        """The writer's path: one transaction for a batch of codec rows (`_Update` rows complete a row in
        place); per row its new id or the error that kept it out. `dedupe`: the batch is written again
        after the process writing it died, so a row already stored keeps its id."""
        raise NotImplementedError

    def probe(self) -> str | None:
        """One small durable write: None when the store takes writes now, else what stops it."""
        raise NotImplementedError

    def ping(self) -> str | None:
        """A cheap look while idle: None when nothing is known to be wrong, else what is."""
        return None

    def check(self) -> str | None:
        """A start-up integrity check: None when the store is sound, else what is damaged."""
        return None

    def damaged(self, problem: str) -> str:
        """The message for a store `check` found damaged, with the way out."""
        return f"capture store {self.path} is damaged ({problem})"

    def prune(self, before: float, *, progress: Callable[[str], None] | None = None) -> PruneResult:
        """Remove every exchange that started before `before` (epoch seconds)."""
        raise NotImplementedError

    _PRUNE_DELETE = (
        "DELETE FROM exchanges WHERE id IN (SELECT id FROM exchanges WHERE started_at < ? LIMIT ?)"
    )

    def _delete_before(self, result: PruneResult, progress: Callable[[str], None] | None) -> PruneResult:
        """Delete rows that started before `result.before`, a batch per transaction, so a proxy writing
        the same store waits at most one batch."""
        while True:
            with self._transaction():
                deleted = self._execute(self._PRUNE_DELETE, (result.before, PRUNE_BATCH)).rowcount
            result.rows_deleted += deleted
            if progress is not None and deleted:
                progress(f"deleted {result.rows_deleted} exchanges one by one")
            if deleted < PRUNE_BATCH:
                return result

    def info(self) -> dict[str, Any]:
        """What the store holds: backend, schema version, counts by proxy instance, time span."""
        raise NotImplementedError

    def _describe(self, head: dict[str, Any]) -> dict[str, Any]:
        """What `harness store info` shows, from queries both backends answer the same way."""
        total, first, last = self._execute(
            "SELECT COUNT(*), MIN(started_at), MAX(started_at) FROM exchanges"
        ).fetchone()
        proxies = self._execute(
            "SELECT proxy, COUNT(*), MIN(started_at), MAX(started_at) FROM exchanges GROUP BY proxy"
            " ORDER BY proxy"
        ).fetchall()
        (runs,) = self._execute("SELECT COUNT(*) FROM runs").fetchone()
        by_key = self._execute(
            "SELECT key_id, COUNT(*) FROM exchanges GROUP BY key_id ORDER BY key_id"
        ).fetchall()
        return {
            **head,
            "schema_version": self.schema_version,
            "store_id": self.store_id,
            "exchanges": total,
            "first": first,
            "last": last,
            "runs": runs,
            "encryption": {
                "key_id": self.encryption_key_id(),
                "algorithm": self.key_algorithm(),
                "exchanges_by_key": {kid or "clear": n for kid, n in by_key},
            },
            "by_proxy": [
                {"proxy": name, "exchanges": n, "first": lo, "last": hi} for name, n, lo, hi in proxies
            ],
        }

    @property
    def store_id(self) -> str:
        """This store's own id (a UUID made when it was created), what copies between stores key on."""
        (value,) = self._execute("SELECT value FROM store_info WHERE key = 'store_id'").fetchone()
        return value

    # -- exchanges -----------------------------------------------------------------------------------

    def add(self, ex: Exchange) -> int:
        """Insert and commit one exchange; sets and returns its id."""
        from harness.store.codec import INSERT, _to_row, seal_rows

        ex.id = self._insert_id(INSERT, *seal_rows([_to_row(ex)], self.sealing_key()))
        return ex.id

    def add_many(self, exchanges: Sequence[Exchange]) -> list[int]:
        """Insert several exchanges in one transaction (all or none); sets and returns their ids."""
        from harness.store.codec import INSERT, _to_row, seal_rows

        key = self.sealing_key()
        ids = []
        try:
            with self._transaction():
                for ex in exchanges:
                    (row,) = seal_rows([_to_row(ex)], key)
                    if isinstance(row, BaseException):
                        raise row
                    ex.id = self._insert_id(INSERT, row)
                    ids.append(ex.id)
        except BaseException:
            for ex in exchanges:
                ex.id = None
            raise
        return ids

    def get(self, exchange_id: int) -> Exchange | None:
        from harness.store.codec import _COLUMNS, _from_row

        columns = ("id", *_COLUMNS)
        row = self._execute(
            f"SELECT {', '.join(columns)} FROM exchanges WHERE id = ?", (int(exchange_id),)
        ).fetchone()
        return _from_row(columns, self._opener(columns)(row)) if row else None

    def query(self, flt: Any = None, *, bodies: bool = True) -> Iterator[Exchange]:
        """Stream matching exchanges (never the whole result in memory).

        `bodies=False` leaves request/response empty for listings that do not need them (a path filter
        still reads the request to test it). Bad filters raise StoreError or ValueError here, before
        the first row.
        """
        from harness.store.codec import _BODY_COLUMNS, _COLUMNS
        from harness.store.query import _ORDERS, ExchangeFilter, _path_matcher, where_clause

        flt = flt or ExchangeFilter()
        if flt.order not in _ORDERS:
            raise StoreError(f"order {flt.order!r}: expected one of {', '.join(_ORDERS)}")
        if flt.limit is not None and flt.limit < 0:
            raise StoreError(f"limit {flt.limit}: must be 0 or more")
        matcher = _path_matcher(flt.path_values) if flt.path_values else None
        columns = ["id", *_COLUMNS]
        if not bodies:
            columns = [c for c in columns if c not in _BODY_COLUMNS or (c == "request" and matcher)]
        where, params = where_clause(flt, self._one_of)
        if any(c in _BODY_COLUMNS for c in columns):
            self._need_keys()
        sql = f"SELECT {', '.join(columns)} FROM exchanges{where} ORDER BY {_ORDERS[flt.order]}"
        if flt.limit is not None and matcher is None:
            sql += " LIMIT ?"
            params.append(flt.limit)
        chunks = self._stream_rows(sql, params)
        opener = self._opener(columns)
        return _stream(chunks, columns, matcher, flt.limit if matcher else None, bodies, opener)

    def count(self, flt: Any = None) -> int:
        from harness.store.query import ExchangeFilter, where_clause

        flt = flt or ExchangeFilter()
        if flt.path_values:
            return sum(1 for _ in self.query(flt, bodies=False))
        where, params = where_clause(flt, self._one_of)
        (n,) = self._execute(f"SELECT COUNT(*) FROM exchanges{where}", params).fetchone()
        return n if flt.limit is None else min(n, flt.limit)

    # -- runs ----------------------------------------------------------------------------------------

    def create_run(self, kind: str, params: dict[str, Any], *, target: str | None = None) -> int:
        from harness.store.codec import _dumps

        if kind not in RUN_KINDS:
            raise ValueError(f"run kind {kind!r}: expected one of {', '.join(RUN_KINDS)}")
        return self._insert_id(
            "INSERT INTO runs (kind, created_at, params, target, status) VALUES (?, ?, ?, ?, 'running')",
            (kind, time.time(), _dumps(params), target),
        )

    def finish_run(
        self, run_id: int, *, status: str = "finished", summary: dict[str, Any] | None = None
    ) -> None:
        from harness.store.codec import _dumps

        cur = self._execute(
            "UPDATE runs SET finished_at = ?, status = ?, summary = ? WHERE id = ?",
            (time.time(), status, _dumps(summary) if summary is not None else None, run_id),
        )
        if cur.rowcount == 0:
            raise StoreError(f"run {run_id} does not exist in {self.path}")

    def get_run(self, run_id: int) -> Run | None:
        row = self._execute(_RUN_SELECT + " WHERE id = ?", (int(run_id),)).fetchone()
        return _run(row) if row else None

    def runs(self, kind: str | None = None) -> list[Run]:
        rows = self._execute(
            _RUN_SELECT + (" WHERE kind = ?" if kind else "") + " ORDER BY id", (kind,) if kind else ()
        ).fetchall()
        return [_run(row) for row in rows]

    # -- raw rows, for copies between stores ---------------------------------------------------------

    def raw_exchanges(self, after: int, through: int, limit: int) -> list[tuple]:
        """Stored rows (id first, then the codec's columns) with after < id <= through, by id."""
        from harness.store.codec import _COLUMNS

        return self._execute(
            f"SELECT id, {', '.join(_COLUMNS)} FROM exchanges WHERE id > ? AND id <= ? ORDER BY id LIMIT ?",
            (after, through, limit),
        ).fetchall()

    def raw_runs(self) -> list[tuple]:
        return self._execute(_RUN_SELECT + " ORDER BY id").fetchall()

    def id_span(self) -> tuple[int, int, int, int]:
        """(lowest, highest) exchange id and (lowest, highest) run id stored; 0s when empty."""
        lo, hi = self._execute("SELECT COALESCE(MIN(id), 0), COALESCE(MAX(id), 0) FROM exchanges").fetchone()
        rlo, rhi = self._execute("SELECT COALESCE(MIN(id), 0), COALESCE(MAX(id), 0) FROM runs").fetchone()
        return int(lo), int(hi), int(rlo), int(rhi)

    def next_ids(self) -> tuple[int, int]:
        """The highest exchange and run ids used or reserved (what the next new row goes above)."""
        raise NotImplementedError

    def reserve_ids(self, exchanges_through: int, runs_through: int) -> None:
        """Make sure rows added from now on get ids above these (a copy fills the block below)."""
        raise NotImplementedError

    def insert_raw(self, rows: Sequence[tuple]) -> None:
        """Insert stored rows (id first) as they are, inside the current transaction."""
        from harness.store.codec import _COLUMNS

        marks = ", ".join("?" * (len(_COLUMNS) + 1))
        self._executemany(f"INSERT INTO exchanges (id, {', '.join(_COLUMNS)}) VALUES ({marks})", rows)

    def replace_raw(self, rows: Sequence[tuple]) -> None:
        """Overwrite stored rows (id first) in place, inside the current transaction."""
        from harness.store.codec import _COLUMNS

        sets = ", ".join(f"{c} = ?" for c in _COLUMNS)
        self._executemany(f"UPDATE exchanges SET {sets} WHERE id = ?", [(*r[1:], r[0]) for r in rows])

    def upsert_runs(self, rows: Sequence[tuple]) -> None:
        """Insert runs (all columns, id first) or bring stored ones up to date, in the current transaction."""
        columns = ", ".join(RUN_COLUMNS)
        sets = ", ".join(f"{c} = excluded.{c}" for c in RUN_COLUMNS[1:])
        self._executemany(
            f"INSERT INTO runs ({columns}) VALUES ({', '.join('?' * len(RUN_COLUMNS))})"
            f" ON CONFLICT (id) DO UPDATE SET {sets}",
            rows,
        )

    def pending_ids(self, low: int, high: int) -> list[int]:
        """Ids in [low, high] of exchanges still `pending` (completed in place later at their source)."""
        rows = self._execute(
            "SELECT id FROM exchanges WHERE outcome = 'pending' AND id >= ? AND id <= ? ORDER BY id",
            (low, high),
        ).fetchall()
        return [r[0] for r in rows]

    def raw_by_ids(self, ids: Sequence[int]) -> list[tuple]:
        from harness.store.codec import _COLUMNS

        if not ids:
            return []
        clause, param = self._one_of("id", [int(i) for i in ids], "bigint")
        return self._execute(
            f"SELECT id, {', '.join(_COLUMNS)} FROM exchanges WHERE {clause} ORDER BY id", (param,)
        ).fetchall()

    def copy_segments(self, source: str) -> list[tuple]:
        """This store's record of copies from the store `source`: (first_id, last_id, id_offset,
        run_first, run_last, run_offset, done), oldest first."""
        return self._execute(
            "SELECT first_id, last_id, id_offset, run_first, run_last, run_offset, done FROM store_copies"
            " WHERE source = ? ORDER BY first_id",
            (source,),
        ).fetchall()

    def record_segment(self, source: str, label: str, segment: Sequence[int]) -> None:
        first, last, offset, run_first, run_last, run_offset, done = segment
        self._execute(
            "INSERT INTO store_copies (source, label, first_id, last_id, id_offset, run_first, run_last,"
            " run_offset, done, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (source, label, first, last, offset, run_first, run_last, run_offset, done, time.time()),
        )

    def advance_segment(self, source: str, first: int, done: int) -> None:
        self._execute(
            "UPDATE store_copies SET done = ?, updated_at = ? WHERE source = ? AND first_id = ?",
            (done, time.time(), source, first),
        )

    def _executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        raise NotImplementedError

    def prepare(self, rows: Sequence[tuple]) -> None:
        """Before raw rows (id first) are inserted: what they need (PostgreSQL: their days' partitions)."""

    def lock_ids(self) -> None:
        """Inside a transaction: no new ids are handed out until it ends (a copy reserving a block)."""


def _run(row: Sequence[Any]) -> Run:
    rid, kind, created, finished, params, target, status, summary = row
    return Run(
        id=rid,
        kind=kind,
        created_at=created,
        finished_at=finished,
        params=json.loads(params) if params else {},
        target=target,
        status=status,
        summary=json.loads(summary) if summary else None,
    )


def _stream(
    chunks: Iterator[list[tuple]],
    columns: list[str],
    matcher: Callable[[Exchange], bool] | None,
    limit: int | None,
    bodies: bool,
    opener: Callable[[Sequence[Any]], Sequence[Any]],
) -> Iterator[Exchange]:
    from harness.store.codec import _from_row

    yielded = 0
    try:
        if limit == 0:
            return
        for rows in chunks:
            for row in rows:
                ex = _from_row(columns, opener(row))
                if matcher is not None:
                    if not matcher(ex):
                        continue
                    if not bodies:
                        ex.request = b""
                yield ex
                yielded += 1
                if limit is not None and yielded >= limit:
                    return
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()

