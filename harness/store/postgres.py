"""The capture store in a PostgreSQL database: the central store several proxies write at once.

Same schema, codec and query semantics as the SQLite store (`harness.store.backend`), with what a
server adds:

- `exchanges` is range-partitioned by `started_at`, one partition per UTC day (`exchanges_YYYYMMDD`),
  created as rows need them and a day ahead. A partition is created on its own and then attached
  (`ATTACH PARTITION` takes a lock that neither readers nor writers wait on), so an inspection query
  running for a minute never holds up the proxies' commits. `prune` detaches whole days
  (`DETACH ... CONCURRENTLY`) and drops them; only the boundary day is deleted row by row.
- Durable commits are `synchronous_commit = on` (committed and flushed on the server before the
  proxy relays the reply); fast mode uses `off`, the server's own group commit.
- The connection is watched: a server that is down, restarting or read-only makes the writer's
  batches fail with `StoreUnavailable` (so `CaptureWriter` marks the store down and durable channels
  refuse), and it reconnects by itself with a backoff of 0.5 s doubling to 5 s. Nothing is buffered
  meanwhile beyond the writer's bounded queue.
- A password never comes from the URL (refused in `harness.store.location`): libpq reads
  `PGPASSFILE`/`~/.pgpass` or `PGPASSWORD`, as every PostgreSQL tool does.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from harness.store.backend import PruneResult, Store, StoreError, StoreUnavailable
from harness.store.codec import (
    _CHANNEL,
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
from harness.store.location import parse_location
from harness.store.query import _FETCH
from harness.store.schema import MIGRATIONS, statements

log = logging.getLogger("harness.store")

DAY_S = 86400
MIN_SERVER_VERSION = 140000
CONNECT_TIMEOUT_S = 5
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 5.0
WRITER_STATEMENT_TIMEOUT_MS = 30_000
"""A writer statement that has not finished in this long fails (a lock held by hand, a hung server):
the batch is reported as not captured instead of holding durable channels indefinitely."""
TCP_USER_TIMEOUT_MS = 15_000
"""A server that stops acknowledging (a network partition, a powered-off host) is given up after this
long, instead of the kernel's retransmission timeout of many minutes."""
_MIGRATION_LOCK = 0x68617273  # 'hars': one migration at a time when several proxies start together
_OUR_TABLES = ("exchanges", "runs", "store_probe", "store_info", "store_copies", "harness_schema")
_READERS_KEPT = 2

_UNAVAILABLE_STATES = {
    "25006",  # read_only_sql_transaction: a standby, or default_transaction_read_only
    "53100",  # disk_full
    "53200",  # out_of_memory
    "53300",  # too_many_connections
    "57P01",  # admin_shutdown
    "57P02",  # crash_shutdown
    "57P03",  # cannot_connect_now (starting up, in recovery)
    "57014",  # query_canceled (statement_timeout)
    "55P03",  # lock_not_available
    "08000", "08003", "08006", "08001", "08004",  # connection exceptions
}  # fmt: skip


def _sql(text: str) -> str:
    """The shared SQL (`?` parameters) as psycopg spells it (`%s`)."""
    return text.replace("%", "%%").replace("?", "%s")


_INSERT_RETURNING = _sql(INSERT) + " RETURNING id"
_UPDATE = _sql(UPDATE)
_STORED_SEALED = (
    f"SELECT {', '.join(_DEDUPE_COLUMNS)} FROM exchanges WHERE channel = %s AND started_at = %s"
    " AND control_id IS NOT DISTINCT FROM %s"
)
_STORED_ID = (
    "SELECT id FROM exchanges WHERE channel = %s AND started_at = %s AND control_id IS NOT DISTINCT FROM %s"
    " AND request = %s LIMIT 1"
)


def partition_name(day: int) -> str:
    return f"exchanges_{datetime.fromtimestamp(day * DAY_S, UTC):%Y%m%d}"


def _day_of(name: str) -> int | None:
    """The UTC day number of a partition this module named, None for any other table."""
    stamp = name.removeprefix("exchanges_")
    if len(stamp) != 8 or not stamp.isdigit():
        return None
    try:
        return int(datetime.strptime(stamp, "%Y%m%d").replace(tzinfo=UTC).timestamp()) // DAY_S
    except ValueError:
        return None


def _day(started_at: Any) -> int | None:
    if not isinstance(started_at, int | float) or not math.isfinite(started_at):
        return None
    day = int(started_at // DAY_S)
    return day if -719_162 <= day < 2_932_896 else None  # years 1..9999, what a partition name can say


class PostgresStore(Store):
    """A capture store in a PostgreSQL database (see the module docstring).

    `lazy=True` (the capture writer): a server that cannot be reached at start leaves the store
    disconnected instead of raising, and every write and probe tries again with the backoff; anything
    the server itself refuses (authentication, a database that is not a capture store) still raises.
    """

    kind = "postgresql"
    _PRUNE_DELETE = (  # the partition key beside the id: only the boundary day's partition is searched
        "DELETE FROM exchanges WHERE (id, started_at) IN"
        " (SELECT id, started_at FROM exchanges WHERE started_at < ? LIMIT ?)"
    )

    def __init__(
        self,
        target: Any,
        *,
        create: bool = True,
        synchronous: str = "FULL",
        check_same_thread: bool = True,
        lazy: bool = False,
        keys: Any = None,
    ) -> None:
        location = parse_location(target)
        if location.url is None:
            raise StoreError(f"store {target}: not a PostgreSQL URL")
        self.path = self.url = location.url
        self._create = create
        self._writer = lazy
        self._synchronous_commit = "on" if str(synchronous).upper() == "FULL" else "off"
        self._conn: psycopg.Connection | None = None
        self._readers: list[psycopg.Connection] = []
        self._days: set[int] = set()
        self._upkept_day: int | None = None
        self._backoff = 0.0
        self._retry_at = 0.0
        self._problem: str | None = None
        self._cursors = 0
        self._dedupe_opener: Any = None
        self._sealing: Any = None
        try:
            self._conn = self._open()
        except StoreUnavailable as exc:
            if not lazy:
                raise
            self._down(str(exc))
        try:
            self._use_keys(keys, check=self._conn is not None)  # else checked at the first write
        except BaseException:
            self.close()
            raise

    # -- connections ---------------------------------------------------------------------------------

    def _params(self, *, writer: bool) -> dict[str, Any]:
        from psycopg.conninfo import conninfo_to_dict

        params = conninfo_to_dict(self.url)
        params.setdefault("connect_timeout", str(CONNECT_TIMEOUT_S))
        params.setdefault("application_name", "harness capture writer" if writer else "harness")
        params.setdefault("keepalives", "1")
        params.setdefault("keepalives_idle", "10")
        params.setdefault("keepalives_interval", "5")
        params.setdefault("keepalives_count", "3")
        params.setdefault("tcp_user_timeout", str(TCP_USER_TIMEOUT_MS))
        return params

    def _connect(self, *, writer: bool) -> psycopg.Connection:
        try:
            conn = psycopg.connect(autocommit=True, **self._params(writer=writer))
        except psycopg.OperationalError as exc:
            text = " ".join(str(exc).split())
            if _passing(text):
                raise StoreUnavailable(f"capture store {self.url}: cannot connect: {text}") from None
            raise StoreError(f"capture store {self.url}: {text}") from None
        except psycopg.Error as exc:
            raise StoreError(f"capture store {self.url}: {_first_line(exc)}") from None
        return conn

    def _open(self) -> psycopg.Connection:
        conn = self._connect(writer=self._writer)
        if conn.info.server_version < MIN_SERVER_VERSION:
            version = conn.info.server_version
            conn.close()
            raise StoreError(
                f"capture store {self.url}: PostgreSQL {version // 10000} is too old; the store needs 14 or "
                "later (DETACH PARTITION CONCURRENTLY, gen_random_uuid)"
            )
        try:
            conn.execute(f"SET synchronous_commit = {self._synchronous_commit}")
            if self._writer:
                conn.execute(f"SET statement_timeout = {WRITER_STATEMENT_TIMEOUT_MS}")
            self._migrate(conn)
            self._load_days(conn)
        except StoreError:
            conn.close()
            raise
        except psycopg.Error as exc:
            conn.close()
            raise self._classify(exc) from None
        self._backoff = 0.0
        self._problem = None
        return conn

    def _ready(self) -> psycopg.Connection:
        """The live connection, reconnecting (no sooner than the backoff allows); StoreUnavailable else."""
        conn = self._conn
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        if conn is not None:
            self._down("the connection to the database was lost")
        now = time.monotonic()
        if now < self._retry_at:
            raise StoreUnavailable(f"{self._problem} (next attempt in {self._retry_at - now:.1f} s)")
        try:
            self._conn = self._open()
        except StoreError as exc:
            self._down(str(exc))
            raise StoreUnavailable(str(exc)) from None
        log.warning("capture store %s: connected again", self.url)
        return self._conn

    def _down(self, problem: str) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001 - a broken connection may fail to close; it is dropped
                pass
            self._conn = None
        self._problem = problem
        self._backoff = BACKOFF_FIRST_S if self._backoff == 0 else min(self._backoff * 2, BACKOFF_MAX_S)
        self._retry_at = time.monotonic() + self._backoff

    def _failure(self, exc: BaseException) -> StoreError:
        """A database error as the store's own (see `_classify`); the connection is dropped, to be made
        again after the backoff, when the error is one that passes."""
        failure = self._classify(exc)
        if isinstance(failure, StoreUnavailable):
            self._down(str(failure))
        return failure

    def _classify(self, exc: BaseException) -> StoreError:
        """StoreUnavailable for what passes (server down, restarting, read-only, full), StoreError for
        the rest."""
        text = _first_line(exc)
        state = getattr(exc, "sqlstate", None)
        conn = self._conn
        lost = conn is None or conn.closed or conn.broken
        if state == "25006":
            text = f"the database is read-only (a standby, or default_transaction_read_only): {text}"
        if lost or state in _UNAVAILABLE_STATES or isinstance(exc, psycopg.OperationalError):
            return StoreUnavailable(f"capture store {self.url}: {text}")
        return StoreError(f"capture store {self.url}: {text}")

    def _reader(self) -> psycopg.Connection:
        while self._readers:
            conn = self._readers.pop()
            if not conn.closed and not conn.broken:
                return conn
        return self._connect(writer=False)

    def _release(self, conn: psycopg.Connection) -> None:
        if conn.closed or conn.broken or len(self._readers) >= _READERS_KEPT:
            conn.close()
        else:
            self._readers.append(conn)

    def close(self) -> None:
        for conn in [*self._readers, self._conn]:
            if conn is not None:
                try:
                    conn.close()
                except Exception:  # noqa: BLE001 - closing what may already be gone
                    pass
        self._readers = []
        self._conn = None

    # -- schema --------------------------------------------------------------------------------------

    def _migrate(self, conn: psycopg.Connection) -> None:
        target = len(MIGRATIONS)
        version = self._version(conn)
        if version == target:
            return
        if version is not None and version > target:
            raise StoreError(
                f"capture store {self.url} has schema version {version}; this harness knows up to "
                f"{target} (upgrade harness to read it)"
            )
        if version is None and not self._create:
            raise StoreError(f"capture store {self.url} does not exist (the database holds no capture store)")
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            version = self._version(conn)  # another proxy may have migrated meanwhile
            if version is None:
                foreign = [
                    name
                    for (name,) in conn.execute(
                        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
                        " AND tablename = ANY(%s)",
                        (list(_OUR_TABLES),),
                    )
                ]
                if foreign:
                    raise StoreError(
                        f"{self.url} has tables named like a capture store's ({', '.join(sorted(foreign))}) "
                        "but is not one; use another database or schema"
                    )
                conn.execute("CREATE TABLE harness_schema (version INTEGER NOT NULL)")
                conn.execute("INSERT INTO harness_schema (version) VALUES (0)")
                version = 0
            for step in range(version, target):
                for statement in statements(MIGRATIONS[step], "postgresql"):
                    conn.execute(statement)
            conn.execute("UPDATE harness_schema SET version = %s", (target,))

    @staticmethod
    def _version(conn: psycopg.Connection) -> int | None:
        # pg_tables, not to_regclass: a fresh snapshot per statement sees a migration another proxy
        # committed while this one waited for the migration lock
        found = conn.execute(
            "SELECT 1 FROM pg_tables WHERE schemaname = current_schema() AND tablename = 'harness_schema'"
        ).fetchone()
        if found is None:
            return None
        row = conn.execute("SELECT version FROM harness_schema").fetchone()
        return int(row[0]) if row else 0

    @property
    def schema_version(self) -> int:
        return self._version(self._ready()) or 0

    # -- partitions ----------------------------------------------------------------------------------

    def _load_days(self, conn: psycopg.Connection) -> None:
        self._days = {day for day in map(_day_of, self.partitions(conn)) if day is not None}

    def partitions(self, conn: psycopg.Connection | None = None) -> list[str]:
        """The names of the partitions attached to `exchanges`, oldest first."""
        conn = conn or self._ready()
        rows = conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'exchanges'::regclass ORDER BY c.relname"
        ).fetchall()
        return [name for (name,) in rows]

    def _ensure_days(self, conn: psycopg.Connection, days: set[int]) -> None:
        for day in sorted(days - self._days):
            self._create_partition(conn, day)
            self._days.add(day)

    def _create_partition(self, conn: psycopg.Connection, day: int) -> None:
        """Create the day's partition and attach it; several proxies may race here, one wins."""
        name = partition_name(day)
        low, high = day * DAY_S, (day + 1) * DAY_S
        try:
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {name} (LIKE exchanges INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
            )
        except (pg_errors.UniqueViolation, pg_errors.DuplicateTable, pg_errors.DuplicateObject):
            pass  # created by another proxy at the same moment ("type ... already exists" is DuplicateObject)
        if name in self.partitions(conn):
            return
        try:
            with conn.transaction():
                conn.execute("SET LOCAL lock_timeout = '10s'")
                conn.execute(
                    f"ALTER TABLE exchanges ATTACH PARTITION {name} FOR VALUES FROM ({low}) TO ({high})"
                )
        except psycopg.Error:
            if name not in self.partitions(conn):  # not attached by another proxy either: a real failure
                raise
        log.info("capture store %s: partition %s created", self.url, name)

    def _upkeep(self, conn: psycopg.Connection) -> None:
        """Today's and tomorrow's partitions exist before traffic needs them (checked once a day)."""
        today = int(time.time() // DAY_S)
        if self._upkept_day != today:
            self._ensure_days(conn, {today, today + 1})
            self._upkept_day = today

    def prepare(self, rows: Sequence[tuple]) -> None:
        """Before raw rows (id first) are inserted: the partitions their days need."""
        conn = self._ready()
        days = {d for d in (_day(r[1 + _STARTED]) for r in rows) if d is not None}
        try:
            self._ensure_days(conn, days)
        except psycopg.Error as exc:
            raise self._failure(exc) from None

    # -- the primitives the shared code runs on ------------------------------------------------------

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor:
        conn = self._ready()
        try:
            return conn.execute(_sql(sql), params)
        except psycopg.Error as exc:
            if isinstance(exc, psycopg.OperationalError) or conn.broken:
                raise self._failure(exc) from None
            raise

    def _executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        conn = self._ready()
        with conn.cursor() as cur:
            cur.executemany(_sql(sql), rows)

    def _insert_id(self, sql: str, params: Sequence[Any]) -> int:
        if sql == INSERT:
            day = _day(params[_STARTED])
            if day is not None:
                self.prepare([(None, *params)])
        return self._execute(sql + " RETURNING id", params).fetchone()[0]

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection]:
        conn = self._ready()
        with conn.transaction():
            yield conn

    def _stream_rows(self, sql: str, params: Sequence[Any]) -> Iterator[list[tuple]]:
        """A server-side cursor in its own transaction on a reader connection: bounded memory, one
        snapshot, and any number of streams open at once in one thread."""
        conn = self._reader()
        self._cursors += 1
        try:
            with conn.transaction():
                with conn.cursor(name=f"harness_stream_{self._cursors}") as cur:
                    cur.itersize = _FETCH
                    cur.execute(_sql(sql), params)
                    while rows := cur.fetchmany(_FETCH):
                        yield rows
        except psycopg.OperationalError as exc:  # the server went away mid-stream
            raise self._classify(exc) from None
        finally:
            self._release(conn)

    def _one_of(self, column: str, values: Sequence[Any], cast: str) -> tuple[str, Any]:
        return f"{column} = ANY(?::{cast}[])", list(values)

    # -- the writer's side ---------------------------------------------------------------------------

    def commit_rows(
        self, rows: list[tuple | BaseException], dedupe: bool = False
    ) -> list[int | BaseException]:
        try:
            conn = self._ready()
            days = {d for d in (_day(r[_STARTED]) for r in _rows(rows)) if d is not None}
            self._ensure_days(conn, days)
            self._upkeep(conn)
            key = self.sealing_key()
        except StoreError as exc:
            return [exc] * len(rows)
        except psycopg.Error as exc:
            return [self._failure(exc)] * len(rows)
        self._dedupe_opener = self._opener(_DEDUPE_COLUMNS) if key is not None else None
        if not dedupe:
            rows = seal_rows(rows, key)
        else:  # new rows are sealed once the stored ones are found: requests are compared in clear
            self._sealing = key
            rows = [seal_rows([r], key)[0] if isinstance(r, _Update) else r for r in rows]
        try:
            with conn.transaction():
                return self._write(conn, rows, dedupe, careful=False)
        except (_RowTrouble, TypeError, ValueError, OverflowError):
            pass  # a row that cannot even be sent: again below, each row on its own
        except psycopg.Error as exc:
            if conn.broken or not _row_error(exc):
                return [self._failure(exc)] * len(rows)
        try:
            with conn.transaction():
                return self._write(conn, rows, dedupe, careful=True)
        except psycopg.Error as exc:
            return [self._failure(exc)] * len(rows)

    def _write(
        self, conn: psycopg.Connection, rows: list[tuple | BaseException], dedupe: bool, careful: bool
    ) -> list[int | BaseException]:
        results: list[int | BaseException] = []
        cur = conn.cursor()
        i, n = 0, len(rows)
        while i < n:
            row = rows[i]
            if isinstance(row, BaseException):
                results.append(row)
                i += 1
            elif isinstance(row, _Update):
                results.append(self._apply_update(conn, cur, row, results, careful))
                i += 1
            else:
                j = i
                while j < n and isinstance(rows[j], tuple) and not isinstance(rows[j], _Update):
                    j += 1
                results.extend(self._insert(conn, cur, rows[i:j], dedupe, careful))  # type: ignore[arg-type]
                i = j
        return results

    def _insert(
        self, conn: psycopg.Connection, cur: psycopg.Cursor, rows: list[tuple], dedupe: bool, careful: bool
    ) -> list[int | BaseException]:
        if dedupe:
            found = [self._stored_id(cur, row) for row in rows]
            fresh = seal_rows([row for row, f in zip(rows, found, strict=True) if f is None], self._sealing)
            ids = iter(self._insert(conn, cur, fresh, False, careful))  # type: ignore[arg-type]
            return [f if f is not None else next(ids) for f in found]
        if not careful:
            if len(rows) == 1:
                cur.execute(_INSERT_RETURNING, rows[0])
                return [cur.fetchone()[0]]
            cur.executemany(_INSERT_RETURNING, rows, returning=True)
            ids: list[int | BaseException] = []
            while True:
                ids.append(cur.fetchone()[0])
                if not cur.nextset():
                    return ids
        out: list[int | BaseException] = []
        for row in rows:
            out.append(self._one(conn, cur, _INSERT_RETURNING, row))
        return out

    def _one(self, conn: psycopg.Connection, cur: psycopg.Cursor, sql: str, params: Sequence[Any]) -> Any:
        """One statement in a savepoint: a bad row fails alone, the batch's transaction goes on."""
        try:
            with conn.transaction():
                cur.execute(sql, params)
                return cur.fetchone()[0] if cur.description else cur.rowcount
        except psycopg.Error as exc:
            if conn.broken or not _row_error(exc):
                raise
            return exc
        except (TypeError, ValueError, OverflowError) as exc:  # the row would not even adapt
            return exc

    def _apply_update(
        self, conn: psycopg.Connection, cur: psycopg.Cursor, update: _Update, results: list, careful: bool
    ) -> int | BaseException:
        target, index, row = update
        if target is None and index is not None and index < len(results) and isinstance(results[index], int):
            target = results[index]
        if not careful:
            try:
                if target is not None:
                    cur.execute(_UPDATE, (*row, target))
                    if cur.rowcount == 1:
                        return target
                cur.execute(_INSERT_RETURNING, row)
                return cur.fetchone()[0]
            except (TypeError, ValueError, OverflowError) as exc:
                raise _RowTrouble from exc
        if target is not None:
            updated = self._one(conn, cur, _UPDATE, (*row, target))
            if updated == 1:
                return target
            if isinstance(updated, BaseException):
                return updated
        return self._one(conn, cur, _INSERT_RETURNING, row)

    def _stored_id(self, cur: psycopg.Cursor, row: tuple) -> int | None:
        opener = self._dedupe_opener
        if opener is None:
            cur.execute(_STORED_ID, (row[_CHANNEL], row[_STARTED], row[_CONTROL_ID], row[_REQUEST]))
            found = cur.fetchone()
            return found[0] if found else None
        cur.execute(_STORED_SEALED, (row[_CHANNEL], row[_STARTED], row[_CONTROL_ID]))
        return stored_match(cur.fetchall(), row[_REQUEST], opener)

    def probe(self) -> str | None:
        try:
            conn = self._ready()
            conn.execute(
                "INSERT INTO store_probe (id, at) VALUES (1, %s)"
                " ON CONFLICT (id) DO UPDATE SET at = excluded.at",
                (time.time(),),
            )
            self._upkeep(conn)
        except StoreError as exc:
            return str(exc)
        except psycopg.Error as exc:
            return str(self._failure(exc))
        return None

    def ping(self) -> str | None:
        try:
            conn = self._ready()
            (read_only,) = conn.execute("SELECT current_setting('transaction_read_only')").fetchone()
            if read_only == "on":
                return (
                    f"capture store {self.url}: the database is read-only (a standby, or "
                    "default_transaction_read_only)"
                )
            self._upkeep(conn)
        except StoreError as exc:
            return str(exc)
        except psycopg.Error as exc:
            return str(self._failure(exc))
        return None

    # -- retention, copies, what it holds ------------------------------------------------------------

    def prune(self, before: float, *, progress: Callable[[str], None] | None = None) -> PruneResult:
        """Detach and drop every day partition that ends at or before `before`, then delete the rows
        of the boundary day that started before it. Proxies keep writing meanwhile."""
        result = PruneResult(before)
        conn = self._ready()
        detaching = {
            name
            for (name,) in conn.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = 'exchanges'::regclass AND i.inhdetachpending"
            )
        }
        for name in self.partitions(conn):
            day = _day_of(name)
            if day is None or (day + 1) * DAY_S > before:
                continue
            (rows,) = conn.execute(f"SELECT COUNT(*) FROM {name}").fetchone()
            if name in detaching:  # a prune interrupted during its detach
                conn.execute(f"ALTER TABLE exchanges DETACH PARTITION {name} FINALIZE")
            else:
                conn.execute(f"ALTER TABLE exchanges DETACH PARTITION {name} CONCURRENTLY")
            conn.execute(f"DROP TABLE {name}")
            self._days.discard(day)
            result.partitions.append(name)
            result.rows_in_partitions += rows
            if progress is not None:
                progress(f"dropped partition {name} ({rows} exchanges)")
        return self._delete_before(result, progress)

    def info(self) -> dict[str, Any]:
        conn = self._ready()
        names = self.partitions(conn)
        (size,) = conn.execute(
            "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class c"
            " WHERE c.relname = ANY(%s)",
            ([*names, "runs"],),
        ).fetchone()
        return self._describe(
            {
                "backend": "postgresql",
                "url": self.url,
                "bytes": int(size),
                "partitions": len(names),
                "first_partition": names[0] if names else None,
                "last_partition": names[-1] if names else None,
            }
        )

    def next_ids(self) -> tuple[int, int]:
        conn = self._ready()
        out = []
        for seq, table in (("exchanges_id_seq", "exchanges"), ("runs_id_seq", "runs")):
            last, called = conn.execute(f"SELECT last_value, is_called FROM {seq}").fetchone()
            (high,) = conn.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}").fetchone()
            out.append(max(int(last) if called else 0, int(high)))
        return out[0], out[1]

    def lock_ids(self) -> None:
        """Inserts take their lock before their default draws an id, so under this lock the sequences
        stand still: what `next_ids` reads and `reserve_ids` sets cannot be overtaken meanwhile."""
        conn = self._ready()
        conn.execute("SET LOCAL lock_timeout = '10s'")
        conn.execute("LOCK TABLE exchanges, runs IN SHARE ROW EXCLUSIVE MODE")

    def reserve_ids(self, exchanges_through: int, runs_through: int) -> None:
        conn = self._ready()
        for seq, through in (("exchanges_id_seq", exchanges_through), ("runs_id_seq", runs_through)):
            if through > 0:
                conn.execute(
                    f"SELECT setval('{seq}', GREATEST(%s, (SELECT CASE WHEN is_called THEN last_value"
                    f" ELSE 0 END FROM {seq}), 1))",
                    (through,),
                )


class _RowTrouble(Exception):
    """A row that cannot even be sent (fast path): the batch is tried again row by row."""


def _rows(rows: list[tuple | BaseException]) -> Iterator[tuple]:
    for row in rows:
        if isinstance(row, _Update):
            yield row[2]
        elif isinstance(row, tuple):
            yield row


def _row_error(exc: psycopg.Error) -> bool:
    """An error that belongs to one row's values (a bad exchange), not to the store as a whole."""
    return isinstance(exc, psycopg.DataError | psycopg.IntegrityError) or (
        isinstance(exc, psycopg.ProgrammingError) and exc.sqlstate is None  # failed to adapt a value
    )


_PASSING = (
    "starting up", "shutting down", "in recovery", "too many", "connection slots", "not yet accepting",
)  # fmt: skip
"""What a server says when it refuses a connection for now, not for good."""


_REFUSED = ("fe_sendauth", "no password supplied", "certificate verify failed", "does not support SSL")
"""What libpq itself says when the server asked for something the client cannot give: a setting to fix."""


def _passing(text: str) -> bool:
    """A failed connection worth trying again: no answer at all (refused, timed out, no such host),
    or a server that is starting, stopping or full; not one that refused the user or the database."""
    if "FATAL:" in text:
        return any(phrase in text for phrase in _PASSING)
    return not any(phrase in text for phrase in _REFUSED)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or exc.__class__.__name__
    return text.splitlines()[0]

