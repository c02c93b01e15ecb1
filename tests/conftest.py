"""Fixtures shared by the whole suite. Helpers live in support modules (tests/processes.py, tests/ports.py,
tests/messages.py); test modules import them from there, not from here."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.ports import free_port, wait_for_port  # noqa: F401 - re-exported for older imports
from tests.processes import HARNESS, ROOT, Processes  # noqa: F401


@pytest.fixture
def processes() -> Iterator[Processes]:
    procs = Processes()
    try:
        yield procs
    finally:
        procs.stop_all()


@pytest.fixture(scope="session")
def pg_server():
    """One throwaway PostgreSQL server for the session (skips, saying why, without the binaries)."""
    from tests.postgres import start_server

    server = start_server()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def pg_url(pg_server) -> str:
    """A fresh, empty database on the session's server."""
    return pg_server.create_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_target(request, tmp_path):
    """A capture store target on each backend: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return tmp_path / "c.db"
    return request.getfixturevalue("pg_url")
