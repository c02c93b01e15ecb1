"""The capture store in one SQLite file: the embedded default.

One file per store, WAL mode so the proxy's writer and any number of readers (`harness capture`,
replay, reports) work at the same time. The file and its -wal/-shm companions are readable by their
owner only: captured traffic carries patient data. The schema version is SQLite's `user_version`.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from operator import itemgetter
from pathlib import Path
from typing import Any

from harness.store.backend import PruneResult, Store, StoreError
from harness.store.codec import (
    _CHANNEL,
    _COLUMNS,
    _CONTROL_ID,
    _DEDUPE_COLUMNS,
    _REQUEST,
    _STARTED,
    INSERT,
    UPDATE,
    _Update,
    seal_rows,
    stored_match,
)
from harness.store.query import _FETCH, sqlite_one_of
from harness.store.schema import MIGRATIONS, statements

_CHUNKS = (256, 64, 16, 4, 1)
"""Rows per multi-row INSERT: a batch goes in as few statements as these sizes allow."""


_DEFAULTED = frozenset(i for i, name in enumerate(_COLUMNS) if name in ("meta", "notes"))
"""Columns whose DEFAULT is not NULL: always given. Any other column that is NULL in every row of a
chunk is left out of its INSERT (SQLite fills in NULL): an MLLP capture leaves about ten of the 28
columns NULL, and binding them cost about a third of the insert (22.8 vs 31.6 µs a row measured on a
slow VM, docs/PERFORMANCE.md)."""
_INSERTS: dict[tuple[int, tuple[int, ...]], tuple[str, Callable[[tuple], tuple]]] = {}
"""(rows, columns given) -> the multi-row INSERT and the getter of those columns; a few shapes in use."""


def _insert_many(chunk: list) -> tuple[str, list]:
    """The chunk's multi-row INSERT, without the columns NULL in all its rows, and its parameters."""
    keep = tuple(
        i for i, values in enumerate(zip(*chunk, strict=True))
        if i in _DEFAULTED or values.count(None) != len(values)
    )  # fmt: skip
    shape = (len(chunk), keep)
    found = _INSERTS.get(shape)
    if found is None:
        if len(_INSERTS) >= 256:
            _INSERTS.clear()
        one = f"({', '.join('?' * len(keep))})"
        names = ", ".join(_COLUMNS[i] for i in keep)
        found = _INSERTS[shape] = (
            f"INSERT INTO exchanges ({names}) VALUES {', '.join([one] * len(chunk))}",
            itemgetter(*keep),
        )
    sql, getter = found
    return sql, [v for row in chunk for v in getter(row)]


def _create_private(path: Path) -> None:
    """Create an empty file with mode 0600 whatever the umask, so no byte is ever readable by others."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.fchmod(fd, 0o600)
    os.close(fd)


def _connect(path: Path, *, create: bool, synchronous: str, check_same_thread: bool) -> sqlite3.Connection:
    if not path.exists():
        if not create:
            raise StoreError(f"capture store {path} does not exist")
        _create_private(path)
    elif path.is_dir():
        raise StoreError(f"capture store {path} is a directory")
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=check_same_thread, timeout=10.0)
    except sqlite3.Error as exc:
        raise StoreError(f"capture store {path}: cannot open: {exc}") from None
    try:
        conn.execute("PRAGMA busy_timeout = 10000")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"capture store {path}: WAL mode refused (journal_mode={mode})")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        conn.execute("PRAGMA journal_size_limit = 67108864")  # a checkpointed WAL shrinks back to 64 MiB
        _migrate(conn, path)
    except sqlite3.DatabaseError as exc:
        conn.close()
        text = str(exc)
        if "not a database" in text or "malformed" in text:
            raise StoreError(f"capture store {path}: not a usable SQLite file: {text}") from None
        raise StoreError(f"capture store {path}: {text}") from None
    except BaseException:
        conn.close()
        raise
    for suffix in ("-wal", "-shm"):
        companion = Path(f"{path}{suffix}")
        try:
            if companion.exists() and companion.stat().st_mode & 0o077 and path.stat().st_mode & 0o077 == 0:
                os.chmod(companion, 0o600)
        except OSError:
            pass
    return conn


def _migrate(
    conn: sqlite3.Connection, path: Path, migrations: Sequence[Sequence[Any]] = MIGRATIONS
) -> None:
    target = len(migrations)
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version == target:
        return
    if version > target:
        raise StoreError(
            f"capture store {path} has schema version {version}; this harness knows up to {target} "
            "(upgrade harness to read it)"
        )
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]  # another process may have migrated
        if version == 0:
            foreign = [
                name
                for (name,) in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
                )
            ]
            if foreign:
                raise StoreError(
                    f"{path} is an SQLite file but not a capture store (tables: {', '.join(sorted(foreign))})"
                )
        for step in range(version, target):
            for statement in statements(migrations[step], "sqlite"):
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {target}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise



class SQLiteStore(Store):
    """A capture store file: add and read exchanges, create and finish runs.

    One connection, for one thread (`check_same_thread=False` lets a writer thread own it).
    """

    kind = "sqlite"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        create: bool = True,
        synchronous: str = "FULL",
        check_same_thread: bool = True,
        keys: Any = None,
    ) -> None:
        from harness.store.location import parse_location

        location = parse_location(path)
        if location.path is None:
            raise StoreError(f"store {path}: not a SQLite file")
        self.path = location.path
        self._conn = _connect(
            self.path, create=create, synchronous=synchronous, check_same_thread=check_same_thread
        )
        try:
            self._use_keys(keys)
        except BaseException:
            self._conn.close()
            raise

    def close(self) -> None:
        self._conn.close()

    @property
    def schema_version(self) -> int:
        return self._conn.execute("PRAGMA user_version").fetchone()[0]

    # -- the primitives the shared code runs on ------------------------------------------------------

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self._conn.execute(sql, params)

    def _executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._conn.executemany(sql, rows)

    def _insert_id(self, sql: str, params: Sequence[Any]) -> int:
        return self._conn.execute(sql, params).lastrowid

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def _stream_rows(self, sql: str, params: Sequence[Any]) -> Iterator[list[tuple]]:
        cursor = self._conn.execute(sql, params)
        try:
            while rows := cursor.fetchmany(_FETCH):
                yield rows
        finally:
            cursor.close()

    def _one_of(self, column: str, values: Sequence[Any], cast: str) -> tuple[str, Any]:
        return sqlite_one_of(column, values, cast)

    # -- the writer's side ---------------------------------------------------------------------------

    def commit_rows(
        self, rows: list[tuple | BaseException], dedupe: bool = False
    ) -> list[int | BaseException]:
        try:
            key = self.sealing_key()
        except (StoreError, sqlite3.Error) as exc:
            return [exc] * len(rows)
        opener = self._opener(_DEDUPE_COLUMNS) if key is not None else None
        return _commit_rows(self._conn, rows, dedupe, key, opener)

    def probe(self) -> str | None:
        return _probe(self._conn)

    def check(self) -> str | None:
        return _quick_check(self._conn)

    def damaged(self, problem: str) -> str:
        return _damaged(self.path, problem)

    # -- retention, copies, what it holds ------------------------------------------------------------

    def prune(self, before: float, *, progress: Callable[[str], None] | None = None) -> PruneResult:
        """Delete exchanges that started before `before`, a batch per transaction (the proxy's writer
        waits at most one batch); the file keeps its size, its free pages are reused."""
        return self._delete_before(PruneResult(before), progress)

    def info(self) -> dict[str, Any]:
        return self._describe({"backend": "sqlite", "file": str(self.path), "bytes": _size(self.path)})

    def next_ids(self) -> tuple[int, int]:
        seq = dict(self._conn.execute("SELECT name, seq FROM sqlite_sequence").fetchall())
        _, hi, _, rhi = self.id_span()
        return max(int(seq.get("exchanges", 0)), hi), max(int(seq.get("runs", 0)), rhi)

    def reserve_ids(self, exchanges_through: int, runs_through: int) -> None:
        for table, through in (("exchanges", exchanges_through), ("runs", runs_through)):
            if self._conn.execute("SELECT 1 FROM sqlite_sequence WHERE name = ?", (table,)).fetchone():
                self._conn.execute(
                    "UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = ?", (through, table)
                )
            else:
                self._conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (table, through))


def _size(path: Path) -> int:
    return sum(
        Path(f"{path}{suffix}").stat().st_size
        for suffix in ("", "-wal")
        if Path(f"{path}{suffix}").exists()
    )


def _commit_rows(
    conn: sqlite3.Connection,
    rows: list[tuple | BaseException],
    dedupe: bool = False,
    key: Any = None,
    opener: Callable[[Sequence[Any]], Sequence[Any]] | None = None,
) -> list[int | BaseException]:
    """One write transaction for a batch of rows; the new ids, or per row the error that kept it out.

    `dedupe`: the batch is being written again after the process writing it died, so its transaction
    may have committed: a row already stored (same channel, start time, control id and request) keeps
    its id instead of being stored twice. `key`: the rows' bodies are sealed with it (`opener` opens
    stored ones, to compare requests when deduplicating).
    """
    try:
        conn.execute("BEGIN IMMEDIATE")
        if dedupe:
            results: list[int | BaseException] = []
            fresh: list[tuple | BaseException] = []
            positions: list[int] = []
            for i, row in enumerate(rows):
                plain = isinstance(row, tuple) and not isinstance(row, _Update)
                found = _stored_id(conn, row, opener) if plain else None
                results.append(found if found is not None else row)  # type: ignore[arg-type]
                if found is None:
                    positions.append(i)
                    fresh.append(row)
            for i, result in zip(positions, _insert_rows(conn, seal_rows(fresh, key)), strict=True):
                results[i] = result
        else:
            results = _insert_rows(conn, seal_rows(rows, key))
        if not conn.in_transaction:  # SQLite rolled the whole transaction back (SQLITE_FULL, IOERR, ...)
            cause = next((r for r in results if isinstance(r, sqlite3.Error)), None)
            return [cause or StoreError("the write transaction was rolled back")] * len(rows)
        conn.execute("COMMIT")
        return results
    except sqlite3.Error as exc:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        return [exc] * len(rows)


def _stored_id(
    conn: sqlite3.Connection, row: tuple, opener: Callable[[Sequence[Any]], Sequence[Any]] | None
) -> int | None:
    if opener is None:
        found = conn.execute(
            "SELECT id FROM exchanges WHERE channel = ? AND started_at = ? AND control_id IS ?"
            " AND request = ? LIMIT 1",
            (row[_CHANNEL], row[_STARTED], row[_CONTROL_ID], row[_REQUEST]),
        ).fetchone()
        return found[0] if found else None
    candidates = conn.execute(
        f"SELECT {', '.join(_DEDUPE_COLUMNS)} FROM exchanges"
        " WHERE channel = ? AND started_at = ? AND control_id IS ?",
        (row[_CHANNEL], row[_STARTED], row[_CONTROL_ID]),
    ).fetchall()
    return stored_match(candidates, row[_REQUEST], opener)


def _probe(conn: sqlite3.Connection) -> str | None:
    """One small durable write: None when the store takes writes, else what stops it (disk full, ...)."""
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT OR REPLACE INTO store_probe (id, at) VALUES (1, ?)", (time.time(),))
        conn.execute("COMMIT")
        return None
    except sqlite3.Error as exc:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        return str(exc)


def _quick_check(conn: sqlite3.Connection) -> str | None:
    """SQLite's quick_check (reads every page, cheaper than integrity_check): None when the file is sound."""
    try:
        rows = [row[0] for row in conn.execute("PRAGMA quick_check(5)")]
    except sqlite3.DatabaseError as exc:
        return str(exc)
    return None if rows == ["ok"] else "; ".join(str(r) for r in rows)


def _damaged(path: Path, problem: str) -> str:
    return (
        f"capture store {path} is damaged ({problem}); move it aside and start with a new store, or "
        f"recover what it holds with `sqlite3 {path} .recover`"
    )


def _insert_rows(conn: sqlite3.Connection, rows: list[tuple | BaseException]) -> list[int | BaseException]:
    """Insert rows in multi-row statements, one row at a time where a statement fails; `_Update` rows
    complete a row stored earlier (in this batch or before) in place, in their turn.

    One statement per chunk means one sqlite3_step, so a writer thread gives the GIL up and takes it
    back once per chunk rather than once per row: in the proxy's process every such hand-off competes
    with the reactor. A failed statement is rolled back by SQLite alone (the transaction goes on);
    inside one write transaction the rows of a statement get consecutive ids.
    """
    results: list[int | BaseException] = []
    i, n = 0, len(rows)
    limit = max(1, conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // len(_COLUMNS))
    while i < n:
        if isinstance(rows[i], _Update):
            results.append(_apply_update(conn, rows[i], results))
            i += 1
            continue
        run = 1
        while i + run < n and not isinstance(rows[i + run], _Update):
            run += 1
        size = next(c for c in _CHUNKS if c <= run and c <= limit)
        chunk = rows[i : i + size]
        i += size
        if size > 1 and not any(isinstance(r, BaseException) for r in chunk):
            try:
                last = conn.execute(*_insert_many(chunk)).lastrowid
            except (sqlite3.Error, TypeError, ValueError, OverflowError):
                pass  # one by one below, so a bad exchange fails alone
            else:
                results.extend(range(last - size + 1, last + 1))
                continue
        for row in chunk:
            if isinstance(row, BaseException):
                results.append(row)
                continue
            try:
                results.append(conn.execute(INSERT, row).lastrowid)
            except (sqlite3.Error, TypeError, ValueError, OverflowError) as exc:
                results.append(exc)
    return results


def _apply_update(conn: sqlite3.Connection, update: _Update, results: list) -> int | BaseException:
    """Complete a stored row in place; insert the row when its first version never made it to disk."""
    target, index, row = update
    if target is None and index is not None and index < len(results) and isinstance(results[index], int):
        target = results[index]
    try:
        if target is not None:
            if conn.execute(UPDATE, (*row, target)).rowcount == 1:
                return target
        return conn.execute(INSERT, row).lastrowid
    except (sqlite3.Error, TypeError, ValueError, OverflowError) as exc:
        return exc
