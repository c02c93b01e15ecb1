"""A throwaway PostgreSQL server for tests: initdb + pg_ctl in a temporary folder on a loopback port.

Debian's `postgresql` package puts the server binaries outside PATH (`pg_config --bindir`, or
/usr/lib/postgresql/N/bin); tests that need a server skip, saying so, only when they are absent. The
server refuses to run as root, so when the tests do (CI) it runs as the `postgres` system user (or
`nobody`), in a folder that user owns. Authentication is `trust` for loopback only: the server lives
as long as the test session, on a port nobody else knows.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.ports import free_port

SKIP_REASON = (
    "PostgreSQL server binaries (initdb, pg_ctl) not found: install Debian's postgresql package "
    "(`make postgres`, as root)"
)


def bindir() -> Path | None:
    """Where initdb and pg_ctl are, or None."""
    candidates = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10)
            candidates.append(out.stdout.strip())
        except (OSError, subprocess.SubprocessError):
            pass
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version, reverse=True)
    for folder in candidates:
        if folder and Path(folder, "initdb").exists() and Path(folder, "pg_ctl").exists():
            return Path(folder)
    return None


def _version(folder: str) -> int:
    try:
        return int(Path(folder).parent.name)
    except ValueError:
        return 0


class PostgresServer:
    """One server: `start()`, `url(db)`, `create_database()`, `stop()` / `restart()`."""

    _names = itertools.count(1)

    def __init__(self, bin_dir: Path, *, fsync: bool = False, settings: dict[str, str] | None = None) -> None:
        self.bin = bin_dir
        self.fsync = fsync
        """Off for tests (nothing here survives the session anyway); on for benchmarks."""
        self.settings = settings or {}
        self.root = Path(tempfile.mkdtemp(prefix="harness-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = free_port()
        self._user = self._unprivileged() if os.geteuid() == 0 else None
        if self._user is not None:
            os.chown(self.root, self._user.pw_uid, self._user.pw_gid)
        self._run(["initdb", "-D", str(self.data), "-U", "harness", "-A", "trust", "-E", "UTF8",
                   "--locale=C", "--no-sync"])  # fmt: skip

    @staticmethod
    def _unprivileged() -> pwd.struct_passwd:
        for name in ("postgres", "nobody"):
            try:
                return pwd.getpwnam(name)
            except KeyError:
                continue
        raise RuntimeError("running as root and there is no postgres or nobody user to run the server as")

    def _run(self, args: list[str], check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        kwargs = {}
        if self._user is not None:
            kwargs = {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []}
        result = subprocess.run(
            [str(self.bin / args[0]), *args[1:]], capture_output=True, text=True, timeout=timeout,
            cwd=self.root, **kwargs,
        )  # fmt: skip
        if check and result.returncode != 0:
            output = result.stderr or result.stdout
            raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}): {output}")
        return result

    def start(self) -> None:
        settings = {
            "listen_addresses": "127.0.0.1", "unix_socket_directories": str(self.root),
            "fsync": "on" if self.fsync else "off", "full_page_writes": "on" if self.fsync else "off",
            "max_connections": "200", "shared_buffers": "64MB", **self.settings,
        }  # fmt: skip
        options = f"-p {self.port} " + " ".join(f"-c {key}={value}" for key, value in settings.items())
        self._run(["pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60",
                   "start"])  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run(["pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop"], check=False)

    def restart(self, down_s: float = 0.0) -> None:
        self.stop()
        if down_s:
            time.sleep(down_s)
        self.start()

    def read_only(self, on: bool) -> None:
        """Turn every new transaction read-only (as a standby would be), or back."""
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f"ALTER SYSTEM SET default_transaction_read_only = {'on' if on else 'off'}")
            conn.execute("SELECT pg_reload_conf()")

    def require_password(self, user: str, password: str) -> None:
        """A login role that must give its password (scram-sha-256) over loopback; others keep trust."""
        import psycopg

        hba = self.data / "pg_hba.conf"
        hba.write_text(f"host all {user} 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE ROLE {user} LOGIN CREATEDB PASSWORD '{password}'")
            conn.execute(f"CREATE DATABASE {user} OWNER {user}")
            conn.execute("SELECT pg_reload_conf()")

    def url(self, database: str) -> str:
        return f"postgresql://harness@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        import psycopg

        name = f"t{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def cleanup(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def start_server(**options) -> PostgresServer:
    """A running server, or a skip saying why there is none (`options`: see `PostgresServer`)."""
    folder = bindir()
    if folder is None:
        pytest.skip(SKIP_REASON)
    server = PostgresServer(folder, **options)
    try:
        server.start()
    except BaseException:
        log = server.log.read_text(errors="replace") if server.log.exists() else ""
        server.cleanup()
        raise RuntimeError(f"PostgreSQL did not start: {log[-2000:]}") from None
    return server
