"""The capture store's schema: one list of migrations for both backends, oldest first.

`MIGRATIONS[n]` holds the statements that take a version-n store to version n+1; every open applies
the missing ones in one transaction. Changing the schema is one new entry at the end of that list,
never an edit of an existing one. A statement is SQL both SQLite and PostgreSQL run as written, or a
`Dialects` pair where they differ (types, auto-increment ids, PostgreSQL's time partitions).

PostgreSQL specifics: `exchanges` is partitioned by range of `started_at` (epoch seconds), one
partition per UTC day, created as traffic needs them (`harness.store.postgres`); its primary key is
(id, started_at) because a partitioned table's keys must hold the partition key, ids still come from
one sequence. `run_id` carries no foreign key, as in SQLite where foreign keys are not enforced, so a
copy never refuses what a SQLite store holds.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Dialects:
    """One schema change spelled per backend; None or () where a backend has nothing to do."""

    sqlite: str | tuple[str, ...] | None
    postgresql: str | tuple[str, ...] | None


Statement = str | Dialects


def statements(step: tuple[Statement, ...] | list[Statement], dialect: str) -> list[str]:
    """The SQL of one migration step for `dialect` ('sqlite' or 'postgresql'), in order."""
    out: list[str] = []
    for statement in step:
        if isinstance(statement, str):
            out.append(statement)
            continue
        spelled = getattr(statement, dialect)
        if spelled is None:
            continue
        out.extend([spelled] if isinstance(spelled, str) else spelled)
    return out


_PG_EXCHANGES = """CREATE TABLE exchanges (
            id BIGINT NOT NULL DEFAULT nextval('exchanges_id_seq'),
            channel TEXT NOT NULL,
            protocol TEXT NOT NULL,
            kind TEXT NOT NULL,
            started_at DOUBLE PRECISION NOT NULL,
            ended_at DOUBLE PRECISION,
            latency_ms DOUBLE PRECISION,
            client_addr TEXT,
            upstream_addr TEXT,
            request BYTEA NOT NULL,
            response BYTEA,
            outcome TEXT NOT NULL,
            ack_code TEXT,
            message_type TEXT,
            control_id TEXT,
            charset TEXT,
            fault TEXT,
            meta TEXT NOT NULL DEFAULT '{}',
            error TEXT,
            notes TEXT NOT NULL DEFAULT '[]',
            PRIMARY KEY (id, started_at)
        ) PARTITION BY RANGE (started_at)"""

# Schema history, oldest first: v1 MLLP capture, v2 replay runs and their links to originals,
# v3 HTTP exchanges, v4 the accept ACK of enhanced-mode exchanges and the writer's health probe, v5 the
# proxy instance that captured each exchange, the store's own id and the record of copies into it,
# v6 the key that sealed each exchange's bodies (encryption at rest; NULL: in clear).
MIGRATIONS: list[tuple[Statement, ...]] = [
    (
        Dialects(
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
            (
                "CREATE SEQUENCE exchanges_id_seq",
                _PG_EXCHANGES,
                "ALTER SEQUENCE exchanges_id_seq OWNED BY exchanges.id",
            ),
        ),
        "CREATE INDEX exchanges_channel_started ON exchanges (channel, started_at)",
        "CREATE INDEX exchanges_started ON exchanges (started_at)",
        "CREATE INDEX exchanges_control_id ON exchanges (control_id)",
        "CREATE INDEX exchanges_outcome ON exchanges (outcome)",
        "CREATE INDEX exchanges_message_type ON exchanges (message_type)",
    ),
    (
        Dialects(
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
            """CREATE TABLE runs (
            id BIGSERIAL PRIMARY KEY,
            kind TEXT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            finished_at DOUBLE PRECISION,
            params TEXT NOT NULL DEFAULT '{}',
            target TEXT,
            status TEXT NOT NULL DEFAULT 'running',
            summary TEXT
        )""",
        ),
        Dialects(
            "ALTER TABLE exchanges ADD COLUMN run_id INTEGER REFERENCES runs (id)",
            "ALTER TABLE exchanges ADD COLUMN run_id BIGINT",
        ),
        Dialects(
            "ALTER TABLE exchanges ADD COLUMN original_id INTEGER",
            "ALTER TABLE exchanges ADD COLUMN original_id BIGINT",
        ),
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
        Dialects(
            "ALTER TABLE exchanges ADD COLUMN accept_response BLOB",
            "ALTER TABLE exchanges ADD COLUMN accept_response BYTEA",
        ),
        "CREATE TABLE store_probe (id INTEGER PRIMARY KEY, at DOUBLE PRECISION NOT NULL)",
    ),
    (
        "ALTER TABLE exchanges ADD COLUMN proxy TEXT",
        "CREATE INDEX exchanges_proxy_started ON exchanges (proxy, started_at)",
        "CREATE TABLE store_info (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        Dialects(
            "INSERT INTO store_info (key, value) VALUES ('store_id', lower(hex(randomblob(16))))",
            "INSERT INTO store_info (key, value)"
            " VALUES ('store_id', replace(gen_random_uuid()::text, '-', ''))",
        ),
        """CREATE TABLE store_copies (
            source TEXT NOT NULL,
            label TEXT,
            first_id BIGINT NOT NULL,
            last_id BIGINT NOT NULL,
            id_offset BIGINT NOT NULL,
            run_first BIGINT NOT NULL,
            run_last BIGINT NOT NULL,
            run_offset BIGINT NOT NULL,
            done BIGINT NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (source, first_id)
        )""",
    ),
    ("ALTER TABLE exchanges ADD COLUMN key_id TEXT",),
]
SCHEMA_VERSION = len(MIGRATIONS)
