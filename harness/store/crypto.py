"""Encryption at rest of what a capture store holds of the messages: their bodies.

The request, response and accept-ACK bytes of every exchange are sealed with an authenticated
cipher: AES-256-GCM (a 32-byte key), or SM4-GCM (a 16-byte key, GB/T 32907 with the GCM of RFC 8998)
where national cryptography (国密) is required. Everything else in a row stays in clear, so channel,
times, message type, control id, outcome and the rest stay queryable without the key.

A sealed body is one byte naming the algorithm, a 12-byte nonce drawn at random for that body, the
ciphertext and the 16-byte tag. Its associated data binds it to its place: the column and the row's
channel, start time and control id. A body moved to another exchange, or to another column of the
same one, or a byte of it changed, fails its tag and is reported as an integrity error naming the
exchange; it is never returned as garbage. Ids are left out on purpose: copies between stores move
rows to new ids and must stay readable.

The row's `key_id` column names the key that sealed it (NULL: a body stored in clear, as every store
written before encryption was switched on), and the store's `store_info` row `key_id` names the key
new rows are sealed with. A key id is a one-way fingerprint of the key and its algorithm; it reveals
nothing of the key. Rotation (`rekey`) re-seals rows a batch per transaction, so each row is at any
moment sealed with either key and a crash loses nothing.

Keys come from a file (mode 0600 or stricter, never in the folder of the store it opens) or an
environment variable, as 64 hex digits or base64 (32 bytes) for AES-256-GCM, 32 hex digits or base64
(16 bytes) for SM4-GCM; a key file may also hold the raw bytes. The key's length says its algorithm.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
import stat
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.store.error import StoreError

KEY_ENV = "HARNESS_STORE_KEY"
"""The environment variable that holds the key itself (hex or base64)."""
KEY_FILE_ENV = "HARNESS_STORE_KEY_FILE"
"""The environment variable that names the key file."""

ALGORITHMS = {"aes-256-gcm": (1, 32), "sm4-gcm": (2, 16)}
"""Algorithm name -> (the code that opens each sealed body, the key's length in bytes)."""
_BY_LENGTH = {length: name for name, (_, length) in ALGORITHMS.items()}
NONCE_BYTES = 12
TAG_BYTES = 16
OVERHEAD = 1 + NONCE_BYTES + TAG_BYTES
"""Bytes a sealed body takes beyond its plaintext."""
SEALED_COLUMNS = ("request", "response", "accept_response")
_AAD_HEAD = b"harness exchange body v1\x00"
HOW_TO_GIVE = (
    "--store-key-file FILE, --store-key-env NAME, or $HARNESS_STORE_KEY_FILE / $HARNESS_STORE_KEY "
    "(a proxy: store.encryption in its config)"
)


class StoreKeyError(StoreError):
    """No usable key: missing, unreadable, too open, of the wrong length, or not the store's key."""


class StoreIntegrityError(StoreError):
    """A sealed body does not open: changed on disk, or moved from another exchange or column."""


@dataclass(frozen=True, slots=True)
class KeySource:
    """Where a key comes from (never the key itself): what a proxy config and a writer process carry."""

    key_file: Path | None = None
    key_env: str | None = None
    algorithm: str | None = None
    """The algorithm the key must be for; None accepts either (the key's length decides)."""

    def to_text(self) -> str:
        import json

        return json.dumps(
            {"key_file": str(self.key_file) if self.key_file else None, "key_env": self.key_env,
             "algorithm": self.algorithm}
        )  # fmt: skip

    @classmethod
    def from_text(cls, text: str) -> KeySource:
        import json

        data = json.loads(text)
        key_file = Path(data["key_file"]) if data.get("key_file") else None
        return cls(key_file, data.get("key_env"), data.get("algorithm"))

    def load(self) -> StoreKey:
        if self.key_file is not None:
            return load_key_file(self.key_file, self.algorithm)
        if self.key_env:
            return load_key_env(self.key_env, self.algorithm)
        raise StoreKeyError("store encryption needs key_file or key_env")


class StoreKey:
    """One key: seals bodies for the store and opens what it sealed."""

    __slots__ = ("algorithm", "id", "origin", "_code", "_head", "_aead", "_sm4", "_key")

    def __init__(self, key: bytes, algorithm: str | None = None, origin: str = "a key") -> None:
        expected = _BY_LENGTH.get(len(key))
        if algorithm is not None and algorithm not in ALGORITHMS:
            raise StoreKeyError(
                f"{origin}: algorithm {algorithm!r}: expected one of {', '.join(ALGORITHMS)}"
            )
        if expected is None or (algorithm is not None and expected != algorithm):
            wanted = (
                f"an {algorithm} key is {ALGORITHMS[algorithm][1]} bytes"
                if algorithm
                else "a store key is 32 bytes (aes-256-gcm) or 16 bytes (sm4-gcm)"
            )
            raise StoreKeyError(
                f"{origin} holds {len(key)} bytes; {wanted} (hex or base64 text, or raw bytes in a file); "
                "make one with `harness store keygen FILE`"
            )
        self.algorithm = expected
        self.origin = origin
        self._code = ALGORITHMS[expected][0]
        self._key = key
        self.id = key_id(key, expected)
        self._head = bytes((self._code,))
        self._sm4: Any = None
        self._aead: Any = None
        if expected == "aes-256-gcm":
            self._aead = _lib().AESGCM(key)
        else:
            _check_sm4()
            self._sm4 = _lib().algorithms.SM4(key)

    def __repr__(self) -> str:
        return f"StoreKey({self.algorithm}, id {self.id})"

    def seal(self, plain: bytes, aad: bytes, nonce: bytes | None = None) -> bytes:
        """`plain` sealed; `nonce` (12 bytes, drawn at random by the caller, never reused) or a new one."""
        if nonce is None:
            nonce = os.urandom(NONCE_BYTES)
        if self._aead is not None:
            return self._head + nonce + self._aead.encrypt(nonce, plain, aad)
        lib = _lib()
        enc = lib.Cipher(self._sm4, lib.modes.GCM(nonce)).encryptor()
        enc.authenticate_additional_data(aad)
        body = enc.update(plain) + enc.finalize()
        return self._head + nonce + body + enc.tag

    def open(self, sealed: bytes, aad: bytes) -> bytes | None:
        """The plaintext, or None when the body does not open with this key (tag mismatch)."""
        if len(sealed) < OVERHEAD or sealed[0] != self._code:
            return None
        nonce, body = sealed[1 : 1 + NONCE_BYTES], sealed[1 + NONCE_BYTES :]
        lib = _lib()
        try:
            if self._aead is not None:
                return self._aead.decrypt(nonce, body, aad)
            dec = lib.Cipher(self._sm4, lib.modes.GCM(nonce, body[-TAG_BYTES:])).decryptor()
            dec.authenticate_additional_data(aad)
            return dec.update(body[:-TAG_BYTES]) + dec.finalize()
        except lib.InvalidTag:
            return None


class _Primitives:
    """`cryptography`'s pieces, imported at the first key rather than with the store package (commands
    that never meet an encrypted store do not pay for the import)."""

    def __init__(self) -> None:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self.AESGCM, self.Cipher, self.algorithms, self.modes = AESGCM, Cipher, algorithms, modes
        self.InvalidTag = InvalidTag


_LIB: list[_Primitives] = []


def _lib() -> _Primitives:
    if not _LIB:
        _LIB.append(_Primitives())
    return _LIB[0]


def key_id(key: bytes, algorithm: str) -> str:
    """A one-way fingerprint of the key (16 hex digits): what rows and messages name it by."""
    return hashlib.sha256(b"harness store key id\x00" + algorithm.encode() + b"\x00" + key).hexdigest()[:16]


_SM4_CHECKED: list[bool] = []


def _check_sm4() -> None:
    """SM4-GCM needs an OpenSSL built with SM4 (the cryptography wheels are; some distributions' are
    not): checked once against the RFC 8998 test vector, so a missing or wrong SM4 fails at start."""
    if _SM4_CHECKED:
        return
    try:
        lib = _lib()
        key = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
        nonce = bytes.fromhex("00001234567800000000ABCD")
        enc = lib.Cipher(lib.algorithms.SM4(key), lib.modes.GCM(nonce)).encryptor()
        enc.authenticate_additional_data(bytes.fromhex("FEEDFACEDEADBEEFFEEDFACEDEADBEEFABADDAD2"))
        enc.update(bytes.fromhex("".join(c * 16 for c in "ABCDEFEA")))
        enc.finalize()
        ok = enc.tag.hex() == "83de3541e4c2b58177e065a9bf7b62ec"
    except Exception as exc:  # noqa: BLE001 - any failure means SM4-GCM is not usable here
        raise StoreKeyError(
            f"sm4-gcm is not available in this installation's OpenSSL ({exc}); use aes-256-gcm, or "
            "install a cryptography build with SM4"
        ) from None
    if not ok:
        raise StoreKeyError("sm4-gcm in this installation's OpenSSL fails the RFC 8998 test vector")
    _SM4_CHECKED.append(True)


def aad(column: str, channel: Any, started_at: Any, control_id: Any) -> bytes:
    """The associated data of one body: its column and its row's channel, start time and control id."""
    return _AAD_COLUMN[column] + row_aad(channel, started_at, control_id)


def row_aad(channel: Any, started_at: Any, control_id: Any) -> bytes:
    """The part of the associated data the bodies of one row share (see `aad`)."""
    try:
        when = struct.pack(">d", float(started_at))
    except (TypeError, ValueError):
        when = str(started_at).encode("utf-8", "surrogatepass")
    control = b"\x01" + control_id.encode("utf-8", "surrogatepass") if control_id is not None else b"\x02"
    return b"\x00" + str(channel).encode("utf-8", "surrogatepass") + b"\x00" + when + b"\x00" + control


_AAD_COLUMN = {column: _AAD_HEAD + column.encode() for column in SEALED_COLUMNS}


# -- keys from files and the environment ---------------------------------------------------------


def parse_key(text: bytes, algorithm: str | None, origin: str, *, raw_allowed: bool) -> StoreKey:
    """A key from hex or base64 text (or, from a file, its raw bytes) of the length its algorithm needs."""
    lengths = [ALGORITHMS[algorithm][1]] if algorithm in ALGORITHMS else sorted(_BY_LENGTH)
    stripped = text.strip()
    for decode in (bytes.fromhex, _b64):
        try:
            key = decode(stripped.decode("ascii"))
        except (UnicodeDecodeError, ValueError, binascii.Error):
            continue
        if len(key) in lengths:
            return StoreKey(key, algorithm, origin)
    if raw_allowed and len(text) in lengths and not all(32 < b < 127 for b in text):
        return StoreKey(text, algorithm, origin)  # raw bytes; text of that length is a mistyped key
    wanted = " or ".join(
        f"{name}: {size} bytes, {2 * size} hex digits or base64"
        for name, (_, size) in ALGORITHMS.items()
        if algorithm in (None, name)
    )
    raise StoreKeyError(
        f"{origin} does not hold a store key ({len(stripped)} characters; {wanted}); make one with "
        "`harness store keygen FILE`"
    )


def _b64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def load_key_file(path: str | Path, algorithm: str | None = None) -> StoreKey:
    """The key in `path`: a file its owner alone may read (refused otherwise, with the fix)."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise StoreKeyError(f"store key file {path}: cannot read: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise StoreKeyError(f"store key file {path} is not a regular file")
        if info.st_mode & 0o077:
            raise StoreKeyError(
                f"store key file {path} is readable or writable by others than its owner (mode "
                f"{stat.S_IMODE(info.st_mode):04o}); a key must be private: chmod 600 {path}"
            )
        with os.fdopen(fd, "rb") as handle:
            fd = -1
            data = handle.read(4097)
    finally:
        if fd >= 0:
            os.close(fd)
    if len(data) > 4096:
        raise StoreKeyError(f"store key file {path} is larger than any key")
    return parse_key(data, algorithm, f"store key file {path}", raw_allowed=True)


def load_key_env(name: str, algorithm: str | None = None) -> StoreKey:
    value = os.environ.get(name)
    if not value:
        raise StoreKeyError(f"store key: ${name} is not set (or empty)")
    return parse_key(value.encode("utf-8", "replace"), algorithm, f"${name}", raw_allowed=False)


def new_key_file(path: str | Path, algorithm: str = "aes-256-gcm") -> StoreKey:
    """Write a new random key (hex, mode 0600) for `algorithm`; never overwrites a file."""
    if algorithm not in ALGORITHMS:
        raise StoreKeyError(f"algorithm {algorithm!r}: expected one of {', '.join(ALGORITHMS)}")
    path = Path(path)
    key = secrets.token_bytes(ALGORITHMS[algorithm][1])
    made = StoreKey(key, algorithm, f"store key file {path}")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise StoreKeyError(f"{path} exists already: a key file is never overwritten") from None
    except OSError as exc:
        raise StoreKeyError(f"{path}: cannot write: {exc.strerror or exc}") from None
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(key.hex().encode() + b"\n")
    return made


# -- the keys a process holds --------------------------------------------------------------------


class Keyring:
    """The keys a command holds: any of them opens rows it sealed; new rows are sealed with the store's
    current key when it is among them.

    `encrypts`: a store still in clear becomes encrypted with the first key when written (the proxy's
    `store.encryption`); keys given only to read (command line, environment) never do that, so a
    replay or an import with a key at hand does not turn a store other writers use in clear into one
    they can no longer write. `files` are the key files the keys came from: a store never accepts a
    key kept in its own folder.
    """

    def __init__(
        self, keys: Iterable[StoreKey] = (), files: Iterable[Path] = (), *, encrypts: bool = False
    ) -> None:
        self.keys: dict[str, StoreKey] = {}
        for key in keys:
            self.keys.setdefault(key.id, key)
        self.files = [Path(f) for f in files]
        self.encrypts = encrypts

    def __bool__(self) -> bool:
        return bool(self.keys)

    def __contains__(self, kid: object) -> bool:
        return kid in self.keys

    def get(self, kid: str | None) -> StoreKey | None:
        return self.keys.get(kid) if kid is not None else None

    @property
    def first(self) -> StoreKey | None:
        return next(iter(self.keys.values()), None)

    def add(self, key: StoreKey, file: Path | None = None) -> None:
        self.keys.setdefault(key.id, key)
        if file is not None:
            self.files.append(Path(file))

    def check_apart(self, store_path: Path) -> None:
        """A key file in the store's own folder travels with every copy of the store: refused."""
        folder = Path(store_path).resolve().parent
        for file in self.files:
            if file.resolve().parent == folder:
                raise StoreKeyError(
                    f"store key file {file} is kept beside the store {store_path}: a key in the data's "
                    "folder goes wherever the data goes; keep it in a folder of its own"
                )

    @classmethod
    def from_sources(cls, sources: Iterable[KeySource]) -> Keyring:
        """The keys a writer was configured to seal with (`encrypts`)."""
        ring = cls(encrypts=True)
        for source in sources:
            ring.add(source.load(), source.key_file)
        return ring


_DEFAULT: list[Keyring] = []
"""The keys given on the command line (`use`)."""


def use(ring: Keyring) -> None:
    """Make `ring` the keys every store this process opens without keys of its own uses."""
    _DEFAULT[:] = [ring]


def default_keyring() -> Keyring:
    """The keys given on the command line, else $HARNESS_STORE_KEY_FILE / $HARNESS_STORE_KEY (read at
    each open, so a changed environment is seen), else none."""
    if _DEFAULT:
        return _DEFAULT[0]
    ring = Keyring()
    file = os.environ.get(KEY_FILE_ENV)
    if file:
        ring.add(load_key_file(file), Path(file))
    if os.environ.get(KEY_ENV):
        ring.add(load_key_env(KEY_ENV))
    return ring


def reset_default() -> None:
    """Forget the keys `use` gave (the command that gave them is over)."""
    _DEFAULT.clear()
