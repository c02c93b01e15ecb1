"""The optional JSON-lines copy of the audit chain: one entry a line, appended, never rewritten.

Its point is to live somewhere the store's owner cannot rewrite (shipped to a log host by rsyslog,
filebeat or a cron job, or on append-only storage): whoever rewrites the chain in the store must then
also rewrite every copy. The file is created readable by its owner only, each line is written with
one `write` under an exclusive lock and flushed to disk before the store commits the entry.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from harness.audit.chain import Entry, EntryError, parse_line

FILE_ENV = "HARNESS_AUDIT_FILE"


def append(path: Path, entry: Entry) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, (entry.line() + "\n").encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)


def read(path: Path) -> tuple[list[Entry], list[str]]:
    """The entries of the file in file order, and what could not be read as entries (line: why)."""
    entries: list[Entry] = []
    bad: list[str] = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                entries.append(parse_line(line, f"{path}:{number}"))
            except EntryError as exc:
                bad.append(str(exc))
    return entries, bad
