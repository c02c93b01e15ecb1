"""The admin API's bearer token: where it comes from and what makes it acceptable.

Shared by the proxy (which refuses to start its admin API with a weak token) and `harness fault`
(which refuses to send one). A token shorter than `MIN_TOKEN_CHARS` is guessable; a token file that
group or others can read is a token they have, so it is refused the way ssh refuses a private key
with loose permissions, with the command that fixes it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

TOKEN_ENV = "HARNESS_ADMIN_TOKEN"
MIN_TOKEN_CHARS = 16


class AdminTokenError(Exception):
    """No usable admin token: the message says why and how to fix it."""


def check_token(token: str, source: str) -> str:
    """`token` when it is long enough and printable; AdminTokenError naming `source` otherwise."""
    if len(token) < MIN_TOKEN_CHARS:
        raise AdminTokenError(
            f"the admin token from {source} is {len(token)} character(s); at least {MIN_TOKEN_CHARS} "
            "are needed (make one with: openssl rand -hex 24)"
        )
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in token):
        raise AdminTokenError(
            f"the admin token from {source} holds a space or control character; "
            "use printable characters only (e.g. openssl rand -hex 24)"
        )
    return token


def check_file_mode(path: Path, mode: int) -> None:
    """Refuse a token file readable or writable by group or others (as ssh does for private keys)."""
    if stat.S_IMODE(mode) & 0o077:
        raise AdminTokenError(
            f"permissions {stat.S_IMODE(mode):04o} for token file {str(path)!r} are too open: "
            f"group and others must have no access to it. Fix with: chmod 600 {path}"
        )


def read_token_file(path: str | Path, what: str = "admin.token_file") -> str:
    """The first line of a token file, after checking its permissions and the token itself."""
    path = Path(path)
    try:
        # a symlink is followed (the mode of what it points to counts); O_NONBLOCK: a FIFO never hangs us
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise AdminTokenError(f"cannot read {what} {path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise AdminTokenError(f"{what} {path} is not a regular file")
        check_file_mode(path, info.st_mode)
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(64 * 1024)
    finally:
        os.close(fd)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise AdminTokenError(f"{what} {path} is not UTF-8 text") from None
    lines = text.splitlines()
    token = lines[0].strip() if lines else ""
    if not token:
        raise AdminTokenError(f"{what} {path} is empty (the token is its first line)")
    return check_token(token, f"{what} {path}")


def load_token(token_file: str | Path | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The admin token from HARNESS_ADMIN_TOKEN, else the first line of `token_file`, checked."""
    env = os.environ if environ is None else environ
    value = env.get(TOKEN_ENV, "").strip()
    if value:
        return check_token(value, TOKEN_ENV)
    if token_file is None:
        raise AdminTokenError(
            f"no token. Set {TOKEN_ENV} or admin.token_file in the config (or `admin: off` to run without it)"
        )
    return read_token_file(token_file)
