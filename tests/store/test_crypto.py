"""Sealing bodies at rest, without a store: keys, the two ciphers, and what the associated data binds."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.exchange import Exchange
from harness.store import crypto
from harness.store.codec import _COLUMNS, RowOpener, _to_row, seal_row
from harness.store.crypto import StoreIntegrityError, StoreKey, StoreKeyError

AES = StoreKey(bytes(range(32)))
SM4 = StoreKey(bytes(range(16)))


def test_the_length_of_the_key_names_its_algorithm():
    assert AES.algorithm == "aes-256-gcm" and SM4.algorithm == "sm4-gcm"
    with pytest.raises(StoreKeyError, match="sm4-gcm"):
        StoreKey(bytes(32), "sm4-gcm")
    with pytest.raises(StoreKeyError, match="24 bytes"):
        StoreKey(bytes(24))


def test_a_key_id_is_a_fingerprint_of_key_and_algorithm_not_the_key():
    assert len(AES.id) == 16 and AES.id != StoreKey(bytes(range(1, 33))).id
    assert AES.id not in bytes(range(32)).hex()
    assert StoreKey(bytes(range(32))).id == AES.id  # stable across runs: rows name their key by it


def test_sm4_gcm_matches_the_rfc_8998_test_vector():
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    key = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
    nonce = bytes.fromhex("00001234567800000000ABCD")
    plain = bytes.fromhex("".join(c * 16 for c in "ABCDEFEA"))  # AAAA..BBBB.. as the RFC writes it
    aad = bytes.fromhex("FEEDFACEDEADBEEFFEEDFACEDEADBEEFABADDAD2")
    enc = Cipher(algorithms.SM4(key), modes.GCM(nonce)).encryptor()
    enc.authenticate_additional_data(aad)
    body = enc.update(plain) + enc.finalize()
    assert body.hex().upper().startswith("17F399F08C67D5EE19D0DC9969C4BB7D")
    assert enc.tag.hex().upper() == "83DE3541E4C2B58177E065A9BF7B62EC"
    # and our sealing of it opens with the same library's decryptor, nonce and tag as laid out
    sealed = StoreKey(key).seal(plain, aad)
    dec = Cipher(algorithms.SM4(key), modes.GCM(sealed[1:13], sealed[-16:])).decryptor()
    dec.authenticate_additional_data(aad)
    assert dec.update(sealed[13:-16]) + dec.finalize() == plain


@pytest.mark.parametrize("key", [AES, SM4], ids=["aes-256-gcm", "sm4-gcm"])
@settings(max_examples=60, deadline=None)
@given(plain=st.binary(max_size=2000), aad=st.binary(max_size=64))
def test_what_is_sealed_opens_and_nothing_else_does(key, plain, aad):
    sealed = key.seal(plain, aad)
    assert len(sealed) == len(plain) + crypto.OVERHEAD
    assert key.open(sealed, aad) == plain
    assert key.open(sealed, aad + b"x") is None
    flipped = bytearray(sealed)
    flipped[len(flipped) // 2] ^= 0x01
    assert key.open(bytes(flipped), aad) is None
    other = StoreKey(os.urandom(len(key._key)))
    assert other.open(sealed, aad) is None


def test_every_seal_draws_a_new_nonce():
    a, b = AES.seal(b"same", b"aad"), AES.seal(b"same", b"aad")
    assert a != b and a[1:13] != b[1:13]


def row_of(**kw) -> tuple:
    base = {
        "channel": "adt",
        "request": b"MSH|req",
        "response": b"MSA|AA",
        "control_id": "C1",
        "started_at": 1.5,
    }
    return _to_row(Exchange(**{**base, **kw}))


def test_a_body_opens_only_in_its_own_row_and_column():
    columns = ("id", *_COLUMNS)
    opener = RowOpener(columns, crypto.Keyring([AES]), "s.db")
    a = (1, *seal_row(row_of(control_id="A"), AES))
    b = (2, *seal_row(row_of(control_id="B", started_at=2.5), AES))
    assert opener(a)[columns.index("request")] == b"MSH|req"
    req, resp = columns.index("request"), columns.index("response")
    swapped = list(a)
    swapped[req] = b[req]
    with pytest.raises(StoreIntegrityError, match="exchange 1: its request"):
        opener(swapped)
    crossed = list(a)
    crossed[req], crossed[resp] = a[resp], a[req]
    with pytest.raises(StoreIntegrityError, match="exchange 1"):
        opener(crossed)
    moved = list(a)
    moved[columns.index("channel")] = "lab"  # metadata edited on disk: the bodies no longer open
    with pytest.raises(StoreIntegrityError):
        opener(moved)


def test_a_row_sealed_with_a_key_not_held_says_which_key_is_needed():
    opener = RowOpener(("id", *_COLUMNS), crypto.Keyring([SM4]), "s.db")
    with pytest.raises(StoreKeyError, match=f"key id {AES.id}.*--store-key-file"):
        opener((7, *seal_row(row_of(), AES)))


# -- key files and variables -----------------------------------------------------------------------


def write(path, data: bytes, mode: int = 0o600):
    path.write_bytes(data)
    os.chmod(path, mode)
    return path


@pytest.mark.parametrize(
    "content",
    [
        bytes(range(32)).hex().encode() + b"\n",
        b"  " + __import__("base64").b64encode(bytes(range(32))),
        bytes(range(32)),
    ],
    ids=["hex", "base64", "raw"],
)
def test_a_key_file_may_hold_hex_base64_or_raw_bytes(tmp_path, content):
    assert crypto.load_key_file(write(tmp_path / "k", content)).id == AES.id


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o622])
def test_a_key_file_others_may_read_or_write_is_refused_with_the_fix(tmp_path, mode):
    path = write(tmp_path / "k", bytes(range(32)).hex().encode(), mode)
    with pytest.raises(StoreKeyError, match=f"mode {mode:04o}.*chmod 600"):
        crypto.load_key_file(path)


def test_a_file_that_holds_no_key_says_what_a_key_looks_like(tmp_path):
    with pytest.raises(StoreKeyError, match="does not hold a store key.*64 hex digits"):
        crypto.load_key_file(write(tmp_path / "k", b"password123\n"))
    with pytest.raises(StoreKeyError, match="cannot read"):
        crypto.load_key_file(tmp_path / "missing")


def test_a_key_from_the_environment(monkeypatch):
    monkeypatch.setenv("MY_KEY", bytes(range(16)).hex())
    assert crypto.load_key_env("MY_KEY").id == SM4.id
    monkeypatch.delenv("MY_KEY")
    with pytest.raises(StoreKeyError, match=r"\$MY_KEY is not set"):
        crypto.load_key_env("MY_KEY")


def test_keygen_writes_a_private_key_and_never_overwrites(tmp_path):
    key = crypto.new_key_file(tmp_path / "k", "sm4-gcm")
    assert (tmp_path / "k").stat().st_mode & 0o777 == 0o600
    assert crypto.load_key_file(tmp_path / "k").id == key.id and key.algorithm == "sm4-gcm"
    with pytest.raises(StoreKeyError, match="never overwritten"):
        crypto.new_key_file(tmp_path / "k")


def test_a_key_kept_in_the_stores_folder_is_refused(tmp_path):
    ring = crypto.Keyring([AES], [tmp_path / "k"])
    with pytest.raises(StoreKeyError, match="beside the store"):
        ring.check_apart(tmp_path / "c.db")
    ring.check_apart(tmp_path / "elsewhere" / "c.db")


def test_the_environment_is_the_default_and_the_command_line_overrides_it(tmp_path, monkeypatch):
    monkeypatch.setenv(crypto.KEY_ENV, bytes(range(32)).hex())
    assert AES.id in crypto.default_keyring()
    crypto.use(crypto.Keyring([SM4]))
    try:
        assert list(crypto.default_keyring().keys) == [SM4.id]
    finally:
        crypto.reset_default()
    monkeypatch.delenv(crypto.KEY_ENV)
    assert not crypto.default_keyring()


def test_key_text_is_never_taken_for_raw_key_bytes(tmp_path):
    """An SM4 key in hex (32 characters, no newline) is not a 32-byte AES key."""
    path = write(tmp_path / "k", bytes(range(16)).hex().encode())
    assert crypto.load_key_file(path).id == SM4.id
    with pytest.raises(StoreKeyError, match="does not hold a store key"):
        crypto.load_key_file(path, "aes-256-gcm")
