"""The audit chain in the capture store: the `audit_log` table, SQLite or PostgreSQL.

The table lives beside the capture tables and is created on first use (its own `IF NOT EXISTS`
statements, apart from the capture schema's migrations, so a store of any schema version can carry an
audit log). Triggers refuse UPDATE, DELETE (and, on PostgreSQL, TRUNCATE): that stops mistakes and
tools, not someone who can write the database file or drop a trigger; the hash chain is what detects
them. Appending takes the store's write lock (SQLite `BEGIN IMMEDIATE`, PostgreSQL `LOCK TABLE`), so
processes recording at once (a proxy, a replay, an export) chain one after another.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from harness.audit.chain import Entry, canonical

TABLE = "audit_log"
_COLUMNS = (
    "seq",
    "v",
    "time",
    "store",
    "actor",
    "host",
    "action",
    "target",
    "details",
    "file",
    "prev_hash",
    "hash",
)
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM {TABLE}"


def _create(seq_type: str) -> tuple[str, str]:
    return (
        f"""CREATE TABLE IF NOT EXISTS {TABLE} (
            seq {seq_type} PRIMARY KEY, v INTEGER NOT NULL, time TEXT NOT NULL, store TEXT NOT NULL,
            actor TEXT NOT NULL, host TEXT NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL,
            details TEXT NOT NULL, file TEXT, prev_hash TEXT NOT NULL, hash TEXT NOT NULL)""",
        f"CREATE INDEX IF NOT EXISTS {TABLE}_time ON {TABLE} (time)",
    )


_SQLITE = (
    *_create("INTEGER"),
    f"""CREATE TRIGGER IF NOT EXISTS {TABLE}_no_update BEFORE UPDATE ON {TABLE}
        BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END""",
    f"""CREATE TRIGGER IF NOT EXISTS {TABLE}_no_delete BEFORE DELETE ON {TABLE}
        BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END""",
)
_PG_LOCK = 0x61756474  # 'audt': one process creates the table at a time
_POSTGRES = (
    *_create("BIGINT"),
    """CREATE OR REPLACE FUNCTION harness_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN RAISE EXCEPTION 'audit_log is append-only'; END $$""",
    f"""DO $$ BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = '{TABLE}_append_only') THEN
            CREATE TRIGGER {TABLE}_append_only BEFORE UPDATE OR DELETE ON {TABLE}
                FOR EACH ROW EXECUTE FUNCTION harness_audit_append_only();
            CREATE TRIGGER {TABLE}_no_truncate BEFORE TRUNCATE ON {TABLE}
                FOR EACH STATEMENT EXECUTE FUNCTION harness_audit_append_only();
        END IF; END $$""",
)


class AuditTable:
    """The audit chain of one open `harness.store.Store`."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self._ready = False

    def ensure(self) -> None:
        if self._ready:
            return
        if self.store.kind == "postgresql":
            with self.store._transaction():
                self.store._execute("SELECT pg_advisory_xact_lock(?)", (_PG_LOCK,))
                for statement in _POSTGRES:
                    self.store._execute(statement)
        else:
            with self.store._transaction():
                for statement in _SQLITE:
                    self.store._execute(statement)
        self._ready = True

    def exists(self) -> bool:
        """Whether this store has an audit log at all (reading never creates one)."""
        if self.store.kind == "postgresql":
            (found,) = self.store._execute("SELECT to_regclass(?) IS NOT NULL", (TABLE,)).fetchone()
            return bool(found)
        row = self.store._execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (TABLE,)
        ).fetchone()
        return row is not None

    def append(self, build: Callable[[Entry | None], Entry], before_commit: Callable[[Entry], None]) -> Entry:
        """Under the store's write lock: the head, `build(head)` for the next entry, insert it, then
        `before_commit(entry)` (the JSON-lines copy) so copies come in the chain's order; an exception
        anywhere rolls the entry back."""
        self.ensure()
        with self.store._transaction():
            if self.store.kind == "postgresql":
                self.store._execute(f"LOCK TABLE {TABLE} IN EXCLUSIVE MODE")
            row = self.store._execute(_SELECT + " ORDER BY seq DESC LIMIT 1").fetchone()
            entry = build(None if row is None else _entry(row))
            self.store._execute(
                f"INSERT INTO {TABLE} ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                _row(entry),
            )
            before_commit(entry)
        return entry

    def entries(self, *, since: str | None = None, until: str | None = None) -> Iterator[Entry]:
        """Every entry by sequence (or those in a time range: ISO UTC text); none when there is no log."""
        if not self.exists():
            return
        where, params = [], []
        if since is not None:
            where.append("time >= ?")
            params.append(since)
        if until is not None:
            where.append("time <= ?")
            params.append(until)
        sql = _SELECT + (f" WHERE {' AND '.join(where)}" if where else "") + " ORDER BY seq"
        for chunk in self.store._stream_rows(sql, params):
            for row in chunk:
                yield _entry(row)


def _row(entry: Entry) -> tuple:
    return (
        entry.seq, entry.v, entry.time, entry.store, canonical(entry.actor).decode("utf-8"), entry.host,
        entry.action, entry.target, canonical(entry.details).decode("utf-8"), entry.file, entry.prev_hash,
        entry.hash,
    )  # fmt: skip


def _entry(row: tuple) -> Entry:
    """A row as an entry; a column that no longer holds JSON still gives an entry (its hash will not
    match), so a damaged row is reported by sequence rather than stopping the whole read."""
    values = dict(zip(_COLUMNS, row, strict=True))
    for name in ("actor", "details"):
        try:
            parsed = json.loads(values[name])
        except (TypeError, ValueError):
            parsed = None
        values[name] = parsed if isinstance(parsed, dict) else {"unreadable": str(values[name])}
    return Entry(**values)
