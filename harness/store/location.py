"""Where a capture store is: a SQLite file, or a PostgreSQL database named by a libpq URL.

Spelled the same in the proxy config (`store:`), on every command (`--store`) and in `HARNESS_STORE`:
a file path (or `sqlite:FILE`) for SQLite, `postgresql://user@host:port/db?sslmode=...` for
PostgreSQL. A password never goes in the URL: the URL is shown in logs, /health reasons and run
records. libpq finds it in `PGPASSFILE` (default `~/.pgpass`) or `PGPASSWORD`, or the server needs
none (peer, certificate or trust authentication).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from harness.store.error import StoreError

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
SQLITE_PREFIX = "sqlite:"


@dataclass(frozen=True, slots=True)
class StoreLocation:
    """A parsed store target: `path` for SQLite, `url` for PostgreSQL."""

    kind: str
    """'sqlite' or 'postgresql'."""
    path: Path | None = None
    url: str | None = None

    def __str__(self) -> str:
        return str(self.path) if self.path is not None else str(self.url)

    @property
    def remote(self) -> bool:
        return self.kind == "postgresql"


def is_url(value: object) -> bool:
    """True for a PostgreSQL URL (checked by its scheme only)."""
    return isinstance(value, str) and value.strip().lower().startswith(POSTGRES_SCHEMES)


def parse_location(value: str | os.PathLike[str] | StoreLocation) -> StoreLocation:
    """The store `value` names; StoreError says what is wrong with it (empty, a password in the URL, ...)."""
    if isinstance(value, StoreLocation):
        return value
    if isinstance(value, os.PathLike):
        return StoreLocation("sqlite", path=Path(value))
    if not isinstance(value, str) or not value.strip():
        raise StoreError(f"store {value!r}: expected a SQLite file path or a postgresql:// URL")
    text = value.strip()
    lower = text.lower()
    if lower.startswith(POSTGRES_SCHEMES):
        return StoreLocation("postgresql", url=_checked_url(text))
    if lower.startswith(("postgresql:", "postgres:")):
        raise StoreError(
            f"store {text!r}: a PostgreSQL store is named postgresql://user@host:port/database "
            "(two slashes after the scheme)"
        )
    if lower.startswith(SQLITE_PREFIX):
        rest = text[len(SQLITE_PREFIX) :]
        if rest.startswith("///"):  # sqlite:///abs/path, the URL spelling
            rest = rest[2:]
        if not rest:
            raise StoreError(f"store {text!r}: sqlite: needs a file path, e.g. sqlite:reports/captures.db")
        return StoreLocation("sqlite", path=Path(rest).expanduser())
    return StoreLocation("sqlite", path=Path(text).expanduser())


def _checked_url(url: str) -> str:
    try:
        from psycopg.conninfo import conninfo_to_dict
    except ImportError as exc:  # pragma: no cover - psycopg is a dependency
        raise StoreError(f"store {url!r}: PostgreSQL needs psycopg 3 ({exc})") from None
    try:
        params = conninfo_to_dict(url)
    except Exception as exc:  # noqa: BLE001 - libpq's own parse error says what is wrong
        raise StoreError(f"store {redact(url)!r}: not a valid PostgreSQL URL: {exc}") from None
    if params.get("password"):
        raise StoreError(
            f"store {redact(url)!r}: the URL holds a password; put it in a password file instead "
            "(PGPASSFILE, default ~/.pgpass: host:port:database:user:password) or PGPASSWORD"
        )
    return url


def redact(url: str) -> str:
    """The URL with any password replaced by ***, for messages about a URL that was refused."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    userinfo, at, host = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


def as_target(value: str | os.PathLike[str]) -> Path | str:
    """A store named on the command line or in a config, as the code passes it on: a `Path` for a
    SQLite file, the URL text for PostgreSQL (a `Path` would fold its `//`)."""
    location = parse_location(value)
    return location.path if location.path is not None else str(location.url)


def exists(target: str | os.PathLike[str]) -> bool:
    """False only for a SQLite file that is not there; a database server answers for itself on open."""
    location = parse_location(target)
    return location.path is None or location.path.exists()


def label(target: str | os.PathLike[str]) -> str:
    """A short name for the store in item labels: the file name, or the database name of a URL."""
    location = parse_location(target)
    if location.path is not None:
        return location.path.name
    tail = str(location.url).split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    return tail if tail and "@" not in tail and ":" not in tail else "postgresql"


def make_room(target: str | os.PathLike[str]) -> None:
    """Create the folder a new SQLite file goes in, private (nothing to do for a database server)."""
    from harness.private_files import private_dir

    location = parse_location(target)
    if location.path is not None:
        private_dir(location.path.parent)  # 0700: the store holds patient data
