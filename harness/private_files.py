"""Output files that can hold message content: created 0600, in folders created 0700, never clobbered.

Exports, HAR and flow files, reports and demo outputs carry patients' names, ID numbers and diagnoses,
as the capture store does; they get the store's protection whatever the umask. Folders that already
exist are left as they are (an operator's shared reports folder stays shared); the files in them are
still 0600. An existing file is replaced only when the caller says so (`--force` on exports; reports
are rewritten in place, tightened to 0600), and a symlink planted where an output goes is never
followed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any

FILE_MODE = 0o600
DIR_MODE = 0o700


class OutputExists(FileExistsError):
    """The output is already there and overwriting was not asked for; the message says how."""


def private_dir(path: str | Path) -> Path:
    """`path` as a folder: every missing level created 0700 (whatever the umask); existing ones kept."""
    path = Path(path)
    missing: list[Path] = []
    here = path
    while not here.exists():
        missing.append(here)
        if here.parent == here:
            break
        here = here.parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, DIR_MODE)
        except FileExistsError:
            continue
        os.chmod(folder, DIR_MODE)  # mkdir's mode is masked by the umask
    if not path.is_dir():
        raise NotADirectoryError(f"{path} is not a folder")
    return path


def open_private(path: str | Path, mode: str = "wb", *, force: bool = False) -> IO[Any]:
    """A new file at `path` opened for writing, mode 0600. An existing file raises OutputExists unless
    `force`, and is then truncated and tightened to 0600; a symlink at `path` is refused either way."""
    if mode not in ("wb", "w"):
        raise ValueError(f"open_private writes only ('wb' or 'w'), not {mode!r}")
    path = Path(path)
    private_dir(path.parent)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, FILE_MODE)
    except FileExistsError:
        if path.is_symlink():
            raise OutputExists(f"{path} is a symbolic link; refusing to write through it") from None
        if not force:
            raise OutputExists(f"{path} already exists; add --force to overwrite it") from None
        fd = os.open(path, (flags & ~(os.O_CREAT | os.O_EXCL)) | os.O_TRUNC)
    try:
        os.fchmod(fd, FILE_MODE)
        if mode == "w":
            return os.fdopen(fd, "w", encoding="utf-8", newline="")
        return os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        raise


def write_private(path: str | Path, data: bytes | str, *, force: bool = False) -> Path:
    """Write `data` (text as UTF-8) to a private file; see `open_private`."""
    with open_private(path, "w" if isinstance(data, str) else "wb", force=force) as fh:
        fh.write(data)
    return Path(path)
