"""The capture store: exchanges and runs in one SQLite file.

One file per store, WAL mode so the proxy's writer and any number of readers (`harness capture`,
replay, reports) work at the same time. The file and its -wal/-shm companions are readable by their
owner only: captured traffic carries patient data.

The schema is versioned with SQLite's `user_version`; `MIGRATIONS[n]` turns a version-n file into
version n+1, and every open applies the missing ones in one transaction. Changing the schema is one
new entry at the end of that list, never an edit of an existing one.

`CaptureWriter` is the proxy's side: a thread with its own connection that takes exchanges from a
queue so the reactor never waits on the disk; see its docstring for what each mode guarantees.
"""

from __future__ import annotations

import json
import logging
import operator
import os
import re
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from harness.exchange import Exchange

log = logging.getLogger(__name__)

# Schema history, oldest first: v1 MLLP capture, v2 replay runs and their links to originals,
# v3 HTTP exchanges, v4 the accept ACK of enhanced-mode exchanges. Entry n holds the statements that
# take a version-n file to version n+1.
MIGRATIONS: list[tuple[str, ...]] = [
    (
        """CREATE TABLE exchanges (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            channel TEXT NOT NULL,
            protocol TEXT NOT NULL,
            kind TEXT NOT NULL,
            started_at REAL NOT NULL,
            ended_at REAL,
            latency_ms REAL,
            client_addr TEXT,
            upstream_addr TEXT,
            request BLOB NOT NULL,
            response BLOB,
            outcome TEXT NOT NULL,
            ack_code TEXT,
            message_type TEXT,
            control_id TEXT,
            charset TEXT,
            fault TEXT,
            meta TEXT NOT NULL DEFAULT '{}',
            error TEXT,
            notes TEXT NOT NULL DEFAULT '[]'
        )""",
        "CREATE INDEX exchanges_channel_started ON exchanges (channel, started_at)",
        "CREATE INDEX exchanges_started ON exchanges (started_at)",
        "CREATE INDEX exchanges_control_id ON exchanges (control_id)",
        "CREATE INDEX exchanges_outcome ON exchanges (outcome)",
        "CREATE INDEX exchanges_message_type ON exchanges (message_type)",
    ),
    (
        """CREATE TABLE runs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            kind TEXT NOT NULL,
            created_at REAL NOT NULL,
            finished_at REAL,
            params TEXT NOT NULL DEFAULT '{}',
            target TEXT,
            status TEXT NOT NULL DEFAULT 'running',
            summary TEXT
        )""",
        "ALTER TABLE exchanges ADD COLUMN run_id INTEGER REFERENCES runs (id)",
        "ALTER TABLE exchanges ADD COLUMN original_id INTEGER",
        "CREATE INDEX exchanges_run_id ON exchanges (run_id)",
        "CREATE INDEX exchanges_original_id ON exchanges (original_id)",
    ),
    (
        "ALTER TABLE exchanges ADD COLUMN method TEXT",
        "ALTER TABLE exchanges ADD COLUMN path TEXT",
        "ALTER TABLE exchanges ADD COLUMN status INTEGER",
    ),
    (
        "ALTER TABLE exchanges ADD COLUMN accept_ack_code TEXT",
        "ALTER TABLE exchanges ADD COLUMN accept_response BLOB",
    ),
]
SCHEMA_VERSION = len(MIGRATIONS)

# Exchange fields as stored, in column order (id aside).
_COLUMNS = (
    "channel", "protocol", "kind", "started_at", "ended_at", "latency_ms", "client_addr",
    "upstream_addr", "request", "response", "outcome", "ack_code", "message_type", "control_id",
    "charset", "fault", "method", "path", "status", "meta", "run_id", "original_id", "error", "notes",
    "accept_ack_code", "accept_response",
)  # fmt: skip
_JSON_COLUMNS = frozenset({"fault", "meta", "notes"})
_BODY_COLUMNS = frozenset({"request", "response", "accept_response"})
_INSERT = f"INSERT INTO exchanges ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
_CHUNKS = (256, 64, 16, 4, 1)
"""Rows per multi-row INSERT: a batch goes in as few statements as these sizes allow."""


def _insert_many(size: int) -> str:
    one = f"({', '.join('?' * len(_COLUMNS))})"
    return f"INSERT INTO exchanges ({', '.join(_COLUMNS)}) VALUES {', '.join([one] * size)}"


_INSERTS = {size: _insert_many(size) for size in _CHUNKS}
_UPDATE = f"UPDATE exchanges SET {', '.join(f'{c} = ?' for c in _COLUMNS)} WHERE id = ?"


class _Update(tuple):
    """A row that completes an exchange stored earlier: (target id or None, batch index or None, row).

    The target is the id of the row it replaces, or, when that row is in the same batch and has no id
    yet, its index in the batch. A target that was never stored (its insert failed) is inserted.
    """

    __slots__ = ()

    def __new__(cls, target: int | None, index: int | None, row: tuple) -> _Update:
        return tuple.__new__(cls, (target, index, row))

    def __getnewargs__(self) -> tuple:  # pickled for the writer process
        return tuple(self)
_ORDERS = {
    "id": "id ASC",
    "-id": "id DESC",
    "started_at": "started_at ASC, id ASC",
    "-started_at": "started_at DESC, id DESC",
}
RUN_KINDS = ("capture", "replay", "compare")
_RUN_SELECT = "SELECT id, kind, created_at, finished_at, params, target, status, summary FROM runs"
_FETCH = 500


class StoreError(Exception):
    """The store file cannot be used: missing, not a capture store, newer schema, unusable filter."""


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


_ROW = operator.attrgetter(*_COLUMNS)
_FAULT, _META, _NOTES = (_COLUMNS.index(name) for name in ("fault", "meta", "notes"))
_REQUEST, _RESPONSE = _COLUMNS.index("request"), _COLUMNS.index("response")
_ACCEPT_RESPONSE = _COLUMNS.index("accept_response")
_META_JSON: dict[tuple, str] = {}
"""meta dicts of strings seen lately -> their JSON: a channel's messages mostly share the same few."""


def _meta_json(meta: dict[str, Any] | None) -> str:
    if not meta:
        return "{}"
    key = tuple(meta.items())
    for _, value in key:
        if value.__class__ is not str:  # 1 == True == 1.0 as keys: cache strings only
            return _dumps(meta)
    text = _META_JSON.get(key)
    if text is None:
        text = _dumps(meta)
        if len(_META_JSON) >= 256:
            _META_JSON.clear()
        _META_JSON[key] = text
    return text


def _to_row(ex: Exchange) -> tuple:
    """The exchange as an INSERT's parameters: one C-level attribute fetch, JSON only where needed."""
    row = list(_ROW(ex))
    fault = row[_FAULT]
    if fault is not None:
        row[_FAULT] = _dumps(fault)
    row[_META] = _meta_json(row[_META])
    notes = row[_NOTES]
    row[_NOTES] = _dumps(list(notes)) if notes else "[]"
    for i in (_REQUEST, _RESPONSE, _ACCEPT_RESPONSE):
        value = row[i]
        if value is not None and value.__class__ is not bytes:
            row[i] = bytes(value)
    return tuple(row)


def _from_row(columns: Sequence[str], row: Sequence[Any]) -> Exchange:
    ex = Exchange()
    for name, value in zip(columns, row, strict=True):
        if name in _JSON_COLUMNS:
            value = json.loads(value) if value is not None else None
            if name == "meta" and value is None:
                value = {}
            elif name == "notes" and value is None:
                value = []
        elif name == "request" and value is None:
            value = b""
        setattr(ex, name, value)
    return ex


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
    limit: int | None = None
    order: str = "id"
    """'id', '-id', 'started_at' or '-started_at' ('-' = newest first)."""


def _as_list(value: str | Sequence[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _where(flt: ExchangeFilter) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []

    def one_of(column: str, values: Sequence[Any]) -> None:
        clauses.append(f"{column} IN (SELECT value FROM json_each(?))")
        params.append(json.dumps(list(values)))

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
        clauses.append("(" + " OR ".join(parts or ["0"]) + ")")
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
            live = f"({live} OR run_id IN (SELECT value FROM json_each(?)))"
            params.append(json.dumps([int(r) for r in flt.plus_runs]))
        clauses.append(live)
    if flt.ids is not None:
        one_of("id", [int(i) for i in flt.ids])
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


def _migrate(conn: sqlite3.Connection, path: Path, migrations: Sequence[Sequence[str]] = MIGRATIONS) -> None:
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
            for statement in migrations[step]:
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {target}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


class Store:
    """A capture store file: add and read exchanges, create and finish runs.

    One connection, for one thread; the proxy writes through `CaptureWriter` instead.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        create: bool = True,
        synchronous: str = "FULL",
        check_same_thread: bool = True,
    ) -> None:
        self.path = Path(path)
        self._conn = _connect(
            self.path, create=create, synchronous=synchronous, check_same_thread=check_same_thread
        )

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._conn.close()

    @property
    def schema_version(self) -> int:
        return self._conn.execute("PRAGMA user_version").fetchone()[0]

    # exchanges

    def add(self, ex: Exchange) -> int:
        """Insert and commit one exchange; sets and returns its id."""
        cur = self._conn.execute(_INSERT, _to_row(ex))
        ex.id = cur.lastrowid
        return ex.id

    def add_many(self, exchanges: Sequence[Exchange]) -> list[int]:
        """Insert several exchanges in one transaction (all or none); sets and returns their ids."""
        ids = []
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            for ex in exchanges:
                ex.id = self._conn.execute(_INSERT, _to_row(ex)).lastrowid
                ids.append(ex.id)
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            for ex in exchanges:
                ex.id = None
            raise
        return ids

    def get(self, exchange_id: int) -> Exchange | None:
        cur = self._conn.execute(
            f"SELECT id, {', '.join(_COLUMNS)} FROM exchanges WHERE id = ?", (exchange_id,)
        )
        row = cur.fetchone()
        return _from_row(("id", *_COLUMNS), row) if row else None

    def query(self, flt: ExchangeFilter | None = None, *, bodies: bool = True) -> Iterator[Exchange]:
        """Stream matching exchanges (never the whole result in memory).

        `bodies=False` leaves request/response empty for listings that do not need them (a path filter
        still reads the request to test it). Bad filters raise StoreError or ValueError here, before
        the first row.
        """
        flt = flt or ExchangeFilter()
        if flt.order not in _ORDERS:
            raise StoreError(f"order {flt.order!r}: expected one of {', '.join(_ORDERS)}")
        if flt.limit is not None and flt.limit < 0:
            raise StoreError(f"limit {flt.limit}: must be 0 or more")
        matcher = _path_matcher(flt.path_values) if flt.path_values else None
        columns = ["id", *_COLUMNS]
        if not bodies:
            columns = [c for c in columns if c not in _BODY_COLUMNS or (c == "request" and matcher)]
        where, params = _where(flt)
        sql = f"SELECT {', '.join(columns)} FROM exchanges{where} ORDER BY {_ORDERS[flt.order]}"
        if flt.limit is not None and matcher is None:
            sql += " LIMIT ?"
            params.append(flt.limit)
        cursor = self._conn.execute(sql, params)
        return self._stream(cursor, columns, matcher, flt.limit if matcher else None, bodies)

    @staticmethod
    def _stream(
        cursor: sqlite3.Cursor,
        columns: list[str],
        matcher: Callable[[Exchange], bool] | None,
        limit: int | None,
        bodies: bool,
    ) -> Iterator[Exchange]:
        yielded = 0
        try:
            if limit == 0:
                return
            while rows := cursor.fetchmany(_FETCH):
                for row in rows:
                    ex = _from_row(columns, row)
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
            cursor.close()

    def count(self, flt: ExchangeFilter | None = None) -> int:
        flt = flt or ExchangeFilter()
        if flt.path_values:
            return sum(1 for _ in self.query(flt, bodies=False))
        where, params = _where(flt)
        (n,) = self._conn.execute(f"SELECT COUNT(*) FROM exchanges{where}", params).fetchone()
        return n if flt.limit is None else min(n, flt.limit)

    # runs

    def create_run(self, kind: str, params: dict[str, Any], *, target: str | None = None) -> int:
        if kind not in RUN_KINDS:
            raise ValueError(f"run kind {kind!r}: expected one of {', '.join(RUN_KINDS)}")
        cur = self._conn.execute(
            "INSERT INTO runs (kind, created_at, params, target, status) VALUES (?, ?, ?, ?, 'running')",
            (kind, time.time(), _dumps(params), target),
        )
        return cur.lastrowid

    def finish_run(
        self, run_id: int, *, status: str = "finished", summary: dict[str, Any] | None = None
    ) -> None:
        cur = self._conn.execute(
            "UPDATE runs SET finished_at = ?, status = ?, summary = ? WHERE id = ?",
            (time.time(), status, _dumps(summary) if summary is not None else None, run_id),
        )
        if cur.rowcount == 0:
            raise StoreError(f"run {run_id} does not exist in {self.path}")

    def get_run(self, run_id: int) -> Run | None:
        row = self._conn.execute(
            _RUN_SELECT + " WHERE id = ?",
            (run_id,),
        ).fetchone()
        return self._run(row) if row else None

    def runs(self, kind: str | None = None) -> list[Run]:
        sql = _RUN_SELECT
        rows = self._conn.execute(
            sql + (" WHERE kind = ?" if kind else "") + " ORDER BY id", (kind,) if kind else ()
        )
        return [self._run(row) for row in rows]

    @staticmethod
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


Callback = Callable[[int | BaseException], None]
_Item = tuple[Exchange, "Callback | None", "Exchange | None"]


def _item(queued: tuple) -> _Item:
    """A queue entry (exchange, callback, submitted at, replaces) as a batch item."""
    return queued[0], queued[1], queued[3]


class CaptureWriter:
    """Writes exchanges on a thread of its own so the caller (the proxy's reactor) never waits on disk.

    Modes (the proxy's `capture:` setting; `off` means the proxy creates no writer at all):

    - ``durable``: synchronous=FULL, so every commit is fsynced. An exchange's callback runs only
      after the transaction holding it committed; the proxy relays the reply to the sender from that
      callback, so every exchange whose reply reached its sender is on disk. Exchanges already queued
      when a commit starts share it (group commit), which is what keeps throughput up under many
      connections. With `commit_delay_s` and a `siblings()` hint (how many exchanges are on their way,
      e.g. requests awaiting the upstream's reply), a commit first waits up to that long for them, so
      a few stop-and-wait connections share one fsync instead of paying one each; no hint, no wait.
    - ``fast``: synchronous=NORMAL (WAL: survives a process kill, may lose the last transactions on
      power loss). Exchanges are gathered until the oldest has waited `window_s` (100 ms) or
      `max_batch` are queued, then committed together and their callbacks run. A crash loses at
      most the open group and the one being committed, always the most recent exchanges.

    Several writers (one per mode) may share a file: each transaction takes the write lock up front
    and waits for the other's (busy timeout 10 s).

    ``process=True`` runs the SQLite work in a child process (`WriterProcess`): this thread only turns
    each batch into rows, sends them over a pipe and waits for the child's answer (ids or errors,
    sent after its COMMIT returned), so the caller's process spends about a microsecond per exchange
    and no per-row GIL hand-offs. The guarantees above are unchanged: a callback still runs only
    after the commit holding its exchange. If the child dies, every exchange not yet confirmed fails
    (its callback gets the error) and so does everything submitted later.

    `callback(id_or_exception)` runs on the writer thread: the new row id, or the exception that kept
    the exchange out of the store (errors are counted, never raised at the caller).

    Full queue policy: nothing is dropped. Above `high_water` pending exchanges the writer calls
    `on_pressure(True)` (on the submitting thread) so the proxy can stop reading from senders, and
    `on_pressure(False)` (on the writer thread) once the queue is back under half of it. Only if a
    caller ignores that and the queue reaches `hard_limit` does `submit` block until there is room.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        mode: str = "durable",
        *,
        window_s: float = 0.1,
        max_batch: int = 2000,
        high_water: int = 10_000,
        hard_limit: int | None = None,
        on_pressure: Callable[[bool], None] | None = None,
        process: bool = False,
        commit_delay_s: float = 0.0,
        siblings: Callable[[], int] | None = None,
    ) -> None:
        if mode not in ("durable", "fast"):
            raise ValueError(
                f"capture mode {mode!r}: a writer runs in 'durable' or 'fast' mode ('off' means no writer)"
            )
        self.mode = mode
        self.path = Path(path)
        synchronous = "FULL" if mode == "durable" else "NORMAL"
        self._store: Store | None = None
        self._child: WriterProcess | None = None
        if process:
            self._child = WriterProcess(self.path, synchronous)
        else:
            self._store = Store(path, synchronous=synchronous, check_same_thread=False)
        self._window_s = window_s
        self._max_batch = max(1, max_batch)
        self._high_water = max(1, high_water)
        self._low_water = self._high_water // 2
        self._hard_limit = hard_limit if hard_limit is not None else 4 * self._high_water
        self._on_pressure = on_pressure
        self._commit_delay_s = commit_delay_s
        self.siblings = siblings
        """Durable: how many exchanges are on their way (e.g. requests awaiting the upstream's reply)."""
        self._lingering = False
        self._queue: deque[tuple[Exchange, Callback | None, float]] = deque()
        self._flush_to = 0  # flush() asks the fast window to close early up to this submission count
        self._cond = threading.Condition()
        self._hurry = threading.Event()
        self._submitted = 0
        self._done = 0
        self._closing = False
        self._closed = False
        self._saturated = False
        self.written = 0
        self.errors = 0
        self.commits = 0
        self.callback_errors = 0
        self.last_error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"capture-writer:{self.path.name}", daemon=True
        )
        self._thread.start()

    def __enter__(self) -> CaptureWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pending(self) -> int:
        return self._submitted - self._done

    @property
    def saturated(self) -> bool:
        return self._saturated

    def stats(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "written": self.written,
            "pending": self.pending,
            "errors": self.errors,
            "commits": self.commits,
            "callback_errors": self.callback_errors,
            "saturated": self._saturated,
        }

    def submit(
        self, ex: Exchange, callback: Callback | None = None, *, replaces: Exchange | None = None
    ) -> None:
        """Queue one exchange; returns at once (see the class docstring for the full-queue policy).

        `replaces`: an exchange submitted earlier that this one completes (an enhanced-mode exchange
        stored at its accept ACK): its row is updated in place, and `ex.id` becomes its id.
        """
        pressure = False
        with self._cond:
            if self._closing:
                raise RuntimeError(f"capture writer for {self.path} is closed")
            while len(self._queue) >= self._hard_limit and not self._closing and self._thread.is_alive():
                self._cond.wait(0.05)
            self._queue.append((ex, callback, time.monotonic(), replaces))
            self._submitted += 1
            if not self._saturated and len(self._queue) >= self._high_water:
                self._saturated = pressure = True
            if len(self._queue) == 1 or len(self._queue) >= self._max_batch or self._lingering:
                self._cond.notify_all()
                if len(self._queue) >= self._max_batch:
                    self._hurry.set()
        if pressure and self._on_pressure is not None:
            self._on_pressure(True)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything submitted so far is committed (or failed); False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            target = self._submitted
            self._flush_to = max(self._flush_to, target)
            self._hurry.set()
            while self._done < target:
                if not self._thread.is_alive():
                    return False
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining if remaining is not None else 0.5)
            return True

    def close(self, timeout: float | None = None) -> None:
        """Commit what is queued, stop the thread and close the connection. Idempotent."""
        if self._closed:
            return
        with self._cond:
            self._closing = True
            self._hurry.set()
            self._cond.notify_all()
        self._thread.join(timeout)
        if not self._thread.is_alive():
            if self._store is not None:
                self._store.close()
            if self._child is not None:
                self._child.close()
            self._closed = True

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._queue and not self._closing:
                        self._cond.wait()
                    if not self._queue:
                        return
                if self.mode == "fast":
                    self._gather()
                elif self._commit_delay_s > 0 and self.siblings is not None:
                    self._linger()
                with self._cond:
                    n = min(len(self._queue), self._max_batch)
                    batch = [_item(self._queue.popleft()) for _ in range(n)]
                self._write(batch)
        except BaseException as exc:  # a bug here must not leave callers waiting forever
            log.exception("capture writer for %s stopped", self.path)
            with self._cond:
                failed = [_item(item) for item in self._queue]
                self._queue.clear()
                self._closing = True
            self._finish(failed, [exc] * len(failed))

    def _linger(self) -> None:
        """Durable: when exchanges are on their way, wait for them up to `commit_delay_s` so they share
        this commit's fsync (PostgreSQL's commit_delay with commit_siblings). With few connections
        and an fsync slower than a round trip, fewer and fuller commits move more exchanges."""
        try:
            coming = int(self.siblings())
        except Exception:  # noqa: BLE001 - a broken hint only costs the wait
            return
        if coming <= 0:
            return
        deadline = time.monotonic() + self._commit_delay_s
        with self._cond:
            target = min(self._max_batch, len(self._queue) + coming)
            self._lingering = True
            try:
                while len(self._queue) < target and not self._closing and self._done >= self._flush_to:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return
                    self._cond.wait(remaining)
            finally:
                self._lingering = False

    def _gather(self) -> None:
        """Fast mode: let the group grow until its oldest exchange has waited the window, a batch is
        full, or flush/close asks for the commit now."""
        while True:
            with self._cond:
                if (
                    self._closing
                    or len(self._queue) >= self._max_batch
                    or self._done < self._flush_to
                    or not self._queue
                ):
                    return
                remaining = self._queue[0][2] + self._window_s - time.monotonic()
                self._hurry.clear()
            if remaining <= 0:
                return
            self._hurry.wait(remaining)

    def _write(self, batch: list[_Item]) -> None:
        rows: list[tuple | BaseException] = []
        index = {id(ex): i for i, (ex, _, _) in enumerate(batch)}
        for ex, _, replaces in batch:
            try:
                row = _to_row(ex)
            except (TypeError, ValueError, OverflowError) as exc:
                rows.append(exc)
                continue
            if replaces is not None:
                row = _Update(replaces.id, None if replaces.id is not None else index.get(id(replaces)), row)
            rows.append(row)
        if self._child is not None:
            results = self._child.write(rows)
        else:
            results = _commit_rows(self._store._conn, rows)
        if any(not isinstance(r, BaseException) for r in results):
            self.commits += 1
        self._finish(batch, results)

    def _finish(self, batch: list[_Item], results: list[int | BaseException]) -> None:
        for (ex, callback, _), result in zip(batch, results, strict=True):
            if isinstance(result, int):
                ex.id = result
                self.written += 1
            else:
                self.errors += 1
                self.last_error = result
                log.error("capture of %s exchange %s failed: %s", ex.channel, ex.control_id, result)
            if callback is not None:
                try:
                    callback(result)
                except Exception:
                    self.callback_errors += 1
                    log.exception("capture callback failed")
        relieved = False
        with self._cond:
            self._done += len(batch)
            if self._saturated and len(self._queue) <= self._low_water:
                self._saturated = False
                relieved = True
            self._cond.notify_all()
        if relieved and self._on_pressure is not None:
            self._on_pressure(False)


def _commit_rows(conn: sqlite3.Connection, rows: list[tuple | BaseException]) -> list[int | BaseException]:
    """One write transaction for a batch of rows; the new ids, or per row the error that kept it out."""
    try:
        conn.execute("BEGIN IMMEDIATE")
        results = _insert_rows(conn, rows)
        conn.execute("COMMIT")
        return results
    except sqlite3.Error as exc:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        return [exc] * len(rows)


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
                last = conn.execute(_INSERTS[size], [v for row in chunk for v in row]).lastrowid
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
                results.append(conn.execute(_INSERT, row).lastrowid)
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
            if conn.execute(_UPDATE, (*row, target)).rowcount == 1:
                return target
        return conn.execute(_INSERT, row).lastrowid
    except (sqlite3.Error, TypeError, ValueError, OverflowError) as exc:
        return exc


class WriterProcess:
    """A child process that owns the store's write connection; `write(rows)` commits one batch there.

    Framing on its stdin/stdout: a 4-byte big-endian length, then a pickled list (rows one way; ids
    or exceptions, sent after COMMIT returned, the other). Pickle is safe here: both ends are this
    module, over a private pipe. The child opens the store before it answers the first frame, so a
    store that cannot be opened fails here, in the constructor, with the child's message. It exits
    when its stdin closes (this process ended or `close()`), after committing what it had read; it
    ignores SIGINT and SIGTERM so a Ctrl-C or a process-group TERM cannot cut it off before the
    parent's final flush.
    """

    def __init__(self, path: Path, synchronous: str) -> None:
        import subprocess
        import sys

        root = Path(__file__).resolve().parent.parent
        self.path = Path(path).resolve()
        self._proc = subprocess.Popen(
            [sys.executable, "-c", "from harness.store import _serve_writer; _serve_writer()",
             str(self.path), synchronous],
            cwd=root, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0,
        )  # fmt: skip
        self._broken: BaseException | None = None
        ready = self._receive()
        if isinstance(ready, BaseException):
            self.close()
            raise ready if isinstance(ready, StoreError) else StoreError(str(ready))

    def write(self, rows: list[tuple | BaseException]) -> list[int | BaseException]:
        import pickle

        if self._broken is None:
            try:
                data = pickle.dumps(rows, protocol=pickle.HIGHEST_PROTOCOL)
                self._proc.stdin.write(len(data).to_bytes(4, "big") + data)
                results = self._receive()
                if isinstance(results, list) and len(results) == len(rows):
                    return results
                self._broken = StoreError(f"capture writer process for {self.path}: unexpected answer")
            except (OSError, EOFError, ValueError) as exc:
                self._broken = StoreError(f"capture writer process for {self.path} is gone: {exc}")
        return [self._broken] * len(rows)

    def _receive(self) -> Any:
        import pickle

        head = self._read(4)
        return pickle.loads(self._read(int.from_bytes(head, "big")))

    def _read(self, size: int) -> bytes:
        parts = []
        while size:
            chunk = self._proc.stdout.read(size)
            if not chunk:
                code = self._proc.poll()
                raise EOFError(f"the process ended (exit {code})" if code is not None else "pipe closed")
            parts.append(chunk)
            size -= len(chunk)
        return b"".join(parts)

    def close(self, timeout: float = 30.0) -> None:
        """Close its stdin (it commits what it read and exits) and wait for it."""
        try:
            self._proc.stdin.close()
        except OSError:
            pass
        try:
            self._proc.wait(timeout)
        except Exception:  # noqa: BLE001 - a child that hangs is killed rather than left behind
            self._proc.kill()
            self._proc.wait()
        self._proc.stdout.close()


def _serve_writer() -> None:
    """The child's side of `WriterProcess` (argv: store path, synchronous)."""
    import pickle
    import signal
    import sys

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    inp, out = sys.stdin.buffer, sys.stdout.buffer

    def send(value: Any) -> None:
        try:
            data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # noqa: BLE001 - an exception that does not pickle goes as its text
            value = [v if isinstance(v, int) else StoreError(str(v)) for v in value]
            data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        out.write(len(data).to_bytes(4, "big") + data)
        out.flush()

    def read(size: int) -> bytes | None:
        parts = []
        while size:
            chunk = inp.read(size)
            if not chunk:
                return None
            parts.append(chunk)
            size -= len(chunk)
        return b"".join(parts)

    try:
        store = Store(sys.argv[1], synchronous=sys.argv[2])
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it
        send(StoreError(str(exc)))
        return
    send("ready")
    conn = store._conn
    with store:
        while (head := read(4)) is not None:
            body = read(int.from_bytes(head, "big"))
            if body is None:
                return
            send(_commit_rows(conn, pickle.loads(body)))
