"""The masking key: from a file or an environment variable, never from beside the data it masks.

Whoever holds the key can check a guess (is this pseudonym 张伟's?), so it is kept apart from the data:
a key file in the same folder as the store or the files being masked, or as the output, or anywhere
inside a folder being masked or written, is refused.
The key is at least 16 bytes of secret; `harness mask --new-key FILE` writes 32 random bytes
(base64, mode 0600). The same key gives the same pseudonyms in every run; a new key gives new ones.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

KEY_ENV = "HARNESS_MASK_KEY"
KEY_FILE_ENV = "HARNESS_MASK_KEY_FILE"
MIN_KEY_BYTES = 16


class MaskKeyError(ValueError):
    """No usable key: says where it was looked for and how to make one."""


def load(key_file: str | Path | None = None, *, data_paths: Iterable[str | Path] = ()) -> bytes:
    """The key from `key_file`, else $HARNESS_MASK_KEY_FILE, else $HARNESS_MASK_KEY (the secret itself).

    `data_paths` are the inputs and outputs of the run: a key file in one of their folders is refused.
    """
    path = key_file or os.environ.get(KEY_FILE_ENV) or None
    if path:
        path = Path(path)
        _check_apart(path, data_paths)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise MaskKeyError(f"masking key file {path}: cannot read: {exc.strerror or exc}") from None
        key = raw.strip()
        where = f"masking key file {path}"
    else:
        value = os.environ.get(KEY_ENV)
        if not value:
            raise MaskKeyError(
                "no masking key: give --key-file FILE, or set HARNESS_MASK_KEY_FILE (a file) or "
                "HARNESS_MASK_KEY (the secret); make one with `harness mask --new-key FILE`, and keep it "
                "apart from the data"
            )
        key = value.strip().encode("utf-8")
        where = f"${KEY_ENV}"
    if len(key) < MIN_KEY_BYTES:
        raise MaskKeyError(f"{where} holds {len(key)} bytes; a masking key needs at least {MIN_KEY_BYTES}")
    return key


def _check_apart(key_file: Path, data_paths: Iterable[str | Path]) -> None:
    key = key_file.resolve()
    for data in data_paths:
        data = Path(data).resolve()
        folder = data if data.is_dir() else data.parent
        if key.parent == folder or (data.is_dir() and key.is_relative_to(data)):
            raise MaskKeyError(
                f"masking key file {key_file} is kept beside the data ({data}): keep the key in a folder "
                "of its own, away from stores, captures and masked copies"
            )


def new(path: str | Path) -> Path:
    """Write a new random key (32 bytes, base64) readable by its owner only; never overwrites."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise MaskKeyError(
            f"{path} exists already: a key is never overwritten (its pseudonyms would change)"
        ) from None
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(base64.b64encode(secrets.token_bytes(32)) + b"\n")
    return path
