"""The capture store: exchanges and runs, in a SQLite file (the embedded default) or PostgreSQL.

One concept per module: `backend` (the `Store` interface and what every backend shares), `location`
(where a store is: a file path or a postgresql:// URL), `schema` (one list of migrations for both
databases), `codec` (exchange <-> row), `query` (filters and times), `sqlite` and `postgres` (the two
backends), `writer` (the proxy's capture thread), `process` (the writer's child process),
`transfer` (copies between stores), `crypto` (encryption at rest of the bodies: keys, AES-256-GCM and
SM4-GCM) and `rekey` (key rotation). Everything callers need is importable from `harness.store`;
`Store(target)` opens whichever backend `target` names.
"""

from __future__ import annotations

from harness.store.backend import (
    RUN_KINDS,
    PruneResult,
    Run,
    Store,
    StoreError,
    StoreUnavailable,
    register_backend,
)
from harness.store.location import StoreLocation, is_url, parse_location
from harness.store.process import WriterProcess, _serve_writer  # noqa: F401 - the child's entry point
from harness.store.query import ExchangeFilter, parse_time
from harness.store.schema import MIGRATIONS, SCHEMA_VERSION
from harness.store.writer import CaptureWriter, StoreHealth, file_identity


def _sqlite() -> type[Store]:
    from harness.store.sqlite import SQLiteStore

    return SQLiteStore


def _postgres() -> type[Store]:
    from harness.store.postgres import PostgresStore  # imports psycopg: only for a postgresql:// store

    return PostgresStore


register_backend("sqlite", _sqlite)
register_backend("postgresql", _postgres)

__all__ = [
    "MIGRATIONS",
    "RUN_KINDS",
    "SCHEMA_VERSION",
    "CaptureWriter",
    "ExchangeFilter",
    "PruneResult",
    "Run",
    "Store",
    "StoreError",
    "StoreHealth",
    "StoreLocation",
    "StoreUnavailable",
    "WriterProcess",
    "file_identity",
    "is_url",
    "parse_location",
    "parse_time",
]
