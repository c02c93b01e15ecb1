"""Encryption at rest in real stores: SQLite files (bytes on disk, WAL included) and PostgreSQL.

Bodies are sealed, metadata stays queryable without the key, a missing or wrong key is a clear error
(never garbage), a changed or moved body is an integrity error naming the exchange, rotation keeps
every row readable and retires the old key, and the writer's guarantees hold with a key.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
from pathlib import Path

import pytest

from harness.exchange import Exchange
from harness.store import CaptureWriter, ExchangeFilter, Store, StoreError, crypto
from harness.store.crypto import Keyring, KeySource, StoreIntegrityError, StoreKeyError
from harness.store.rekey import rekey

NAME = "欧阳修远"
TOKEN_GBK = "ZQX-GBK-7781"
TOKEN_UTF8 = "ZQX-UTF8-4412"
TOKEN_JSON = "ZQX-JSON-9903"
GBK_BODY = (
    "MSH|^~\\&|HIS|H1|HC|H2|20261125||ADT^A01|G1|P|2.5|||||CHN|GBK\r"
    f"PID|1||{TOKEN_GBK}^^^HIS||{NAME}||19800101|M|||昆明市五华区\r"
).encode("gbk")
FHIR_BODY = json.dumps(
    {"resourceType": "Patient", "id": TOKEN_UTF8, "name": [{"text": NAME}], "address": [{"city": "大理"}]},
    ensure_ascii=False,
).encode("utf-8")
MEDINS_BODY = json.dumps(
    {"infno": "1101", "input": {"data": {"psn_name": NAME, "certno": TOKEN_JSON}}}, ensure_ascii=False
).encode("utf-8")
SECRETS = [
    NAME.encode("gbk"), NAME.encode("utf-8"), TOKEN_GBK.encode(), TOKEN_UTF8.encode(), TOKEN_JSON.encode(),
    "昆明市五华区".encode("gbk"), "大理".encode(), b"psn_name", b"resourceType", b"MSA|AA|G1",
]  # fmt: skip


def make_key(folder: Path, name: str = "store.key", algorithm: str = "aes-256-gcm") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    crypto.new_key_file(folder / name, algorithm)
    return folder / name


def ring(*files: Path, encrypts: bool = True) -> Keyring:
    """Keys as a writer configured to encrypt holds them (`encrypts=False`: as a command reading)."""
    return Keyring([crypto.load_key_file(f) for f in files], files, encrypts=encrypts)


def traffic(prefix: str = "") -> list[Exchange]:
    return [
        Exchange(channel="adt", kind="hl7v2", request=GBK_BODY, response=b"MSH|^~\\&|HC\rMSA|AA|G1\r",
                 control_id=f"{prefix}G1", message_type="ADT^A01", charset="gbk", ack_code="AA",
                 accept_response=b"MSA|CA|G1\r", accept_ack_code="CA"),
        Exchange(channel="fhir", protocol="http", kind="fhir", request=FHIR_BODY, response=b'{"id":"1"}',
                 control_id=f"{prefix}F1", method="PUT", path="/Patient/1", status=200),
        Exchange(channel="yb", protocol="http", kind="medins", request=MEDINS_BODY, response=None,
                 control_id=f"{prefix}M1", outcome="timeout", meta={"infno": "1101"}),
    ]  # fmt: skip


def on_disk(path: Path) -> bytes:
    return b"".join(Path(f"{path}{s}").read_bytes() for s in ("", "-wal") if Path(f"{path}{s}").exists())


@pytest.fixture
def keys(tmp_path) -> Path:
    return tmp_path / "keys"


@pytest.mark.parametrize("algorithm", ["aes-256-gcm", "sm4-gcm"])
def test_the_store_file_and_its_wal_hold_no_body_in_clear(tmp_path, keys, algorithm):
    key = make_key(keys, algorithm=algorithm)
    path = tmp_path / "data" / "c.db"
    with Store(path, keys=ring(key)) as store:
        store.add_many(traffic())
        store.add(traffic("x")[0])
        raw = on_disk(path)
        assert Path(f"{path}-wal").exists() and len(raw) > 0  # the WAL is searched while it holds the rows
        assert [s for s in SECRETS if s in raw] == []
        # metadata stays queryable in clear, without opening a body
        assert store.count(ExchangeFilter(control_ids=["G1"])) == 1
        got = {ex.control_id: ex for ex in store.query()}
    assert got["G1"].request == GBK_BODY and got["G1"].accept_response == b"MSA|CA|G1\r"
    assert got["F1"].request == FHIR_BODY and got["M1"].response is None
    assert [s for s in SECRETS if s in on_disk(path)] == []  # and after the checkpoint at close
    with sqlite3.connect(path) as conn:  # what anyone with the file sees
        rows = conn.execute("SELECT control_id, message_type, outcome, key_id FROM exchanges").fetchall()
    assert ("G1", "ADT^A01", "ok", crypto.load_key_file(key).id) in rows


def test_the_same_traffic_without_a_key_is_in_clear_as_before(tmp_path):
    path = tmp_path / "c.db"
    with Store(path, keys=Keyring()) as store:
        store.add_many(traffic())
        assert store.encryption_key_id() is None
        assert store.info()["encryption"] == {
            "key_id": None,
            "algorithm": None,
            "exchanges_by_key": {"clear": 3},
        }
    assert NAME.encode("gbk") in on_disk(path)  # the control: the search above finds what is there


def test_without_the_key_metadata_reads_and_bodies_refuse_clearly(tmp_path, keys):
    path = tmp_path / "c.db"
    with Store(path, keys=ring(make_key(keys))) as store:
        store.add_many(traffic())
        kid = store.encryption_key_id()
    with Store(path, keys=Keyring()) as store:
        assert [ex.control_id for ex in store.query(bodies=False)] == ["G1", "F1", "M1"]
        with pytest.raises(
            StoreKeyError, match=f"is encrypted \\(key id {kid}\\); give its key with --store-key-file"
        ):
            store.query()
        with pytest.raises(StoreKeyError, match=f"key id {kid}, exchange 1"):
            store.get(1)
        with pytest.raises(StoreKeyError, match="is encrypted"):
            store.add(traffic()[0])  # never written in clear into an encrypted store
        assert store.count() == 3


def test_a_wrong_key_is_refused_at_open(tmp_path, keys):
    path = tmp_path / "c.db"
    with Store(path, keys=ring(make_key(keys, "a.key"))) as store:
        store.add_many(traffic())
    with pytest.raises(StoreKeyError, match="is encrypted with key .* and the key given .* is not it"):
        Store(path, keys=ring(make_key(keys, "b.key")))


def test_a_key_file_beside_the_store_is_refused(tmp_path):
    key = make_key(tmp_path / "data")
    with pytest.raises(StoreKeyError, match="beside the store"):
        Store(tmp_path / "data" / "c.db", keys=ring(key))


def test_a_changed_byte_or_swapped_bodies_are_integrity_errors_naming_the_exchange(tmp_path, keys):
    path = tmp_path / "c.db"
    keyring = ring(make_key(keys))
    with Store(path, keys=keyring) as store:
        store.add_many(traffic())
    with sqlite3.connect(path) as conn:
        (blob,) = conn.execute("SELECT request FROM exchanges WHERE id = 2").fetchone()
        changed = bytearray(blob)
        changed[20] ^= 0x40
        conn.execute("UPDATE exchanges SET request = ? WHERE id = 2", (bytes(changed),))
    with Store(path, keys=keyring) as store:
        assert store.get(1).request == GBK_BODY
        with pytest.raises(StoreIntegrityError, match="exchange 2: its request does not open"):
            list(store.query())
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE exchanges SET request = ? WHERE id = 2", (blob,))
        a, b = (
            conn.execute("SELECT response FROM exchanges WHERE id = ?", (i,)).fetchone()[0] for i in (1, 2)
        )
        conn.execute("UPDATE exchanges SET response = ? WHERE id = 1", (b,))
        conn.execute("UPDATE exchanges SET response = ? WHERE id = 2", (a,))
    with Store(path, keys=keyring) as store:
        with pytest.raises(StoreIntegrityError, match="exchange 1: its response"):
            store.get(1)
        with pytest.raises(StoreIntegrityError, match="exchange 2: its response"):
            store.get(2)


def test_rekey_reseals_every_row_and_retires_the_old_key(store_target, keys):
    old, new = make_key(keys, "old.key"), make_key(keys, "new.key", "sm4-gcm")
    with Store(store_target, keys=Keyring()) as store:
        store.add_many(traffic("clear-"))  # written before encryption was switched on
    with Store(store_target, keys=ring(old)) as store:
        store.add_many(traffic())
        before = {ex.control_id: (ex.request, ex.response, ex.accept_response) for ex in store.query()}
    with Store(store_target, keys=ring(old)) as store:
        result = rekey(store, crypto.load_key_file(new), batch=2)
    assert result.resealed == 6 and result.left == 0
    assert result.before == {"clear": 3, crypto.load_key_file(old).id: 3}
    with Store(store_target, keys=ring(new)) as store:
        after = {ex.control_id: (ex.request, ex.response, ex.accept_response) for ex in store.query()}
        info = store.info()["encryption"]
    assert after == before
    assert info == {"key_id": result.key_id, "algorithm": "sm4-gcm", "exchanges_by_key": {result.key_id: 6}}
    with pytest.raises(StoreKeyError, match="not it"):
        Store(store_target, keys=ring(old))


def test_a_rekey_cut_short_loses_nothing_and_running_it_again_finishes(store_target, keys):
    old, new = make_key(keys, "old.key"), make_key(keys, "new.key")
    path = store_target
    with Store(path, keys=ring(old)) as store:
        for i in range(10):
            store.add_many(traffic(f"{i}-"))
        before = [(ex.control_id, ex.request, ex.response) for ex in store.query()]

    class Cut(Exception):
        pass

    def cut(done, total):
        if done >= 8:
            raise Cut

    with Store(path, keys=ring(old)) as store, pytest.raises(Cut):
        rekey(store, crypto.load_key_file(new), batch=4, progress=cut)
    with Store(path, keys=ring(old, new)) as store:
        counts = store.info()["encryption"]["exchanges_by_key"]
        assert sorted(counts.values()) == [8, 22]  # whole batches, each row under one key or the other
        assert [(ex.control_id, ex.request, ex.response) for ex in store.query()] == before
    with Store(path, keys=ring(old, new)) as store:
        assert rekey(store, crypto.load_key_file(new)).resealed == 22
    with Store(path, keys=ring(new)) as store:
        assert [(ex.control_id, ex.request, ex.response) for ex in store.query()] == before


def test_rekey_without_every_old_key_changes_nothing(tmp_path, keys):
    a, b, new = make_key(keys, "a.key"), make_key(keys, "b.key"), make_key(keys, "new.key")
    src, dst = tmp_path / "a.db", tmp_path / "b.db"
    from harness.store.transfer import copy_store

    with Store(src, keys=ring(a)) as store:
        store.add_many(traffic("a-"))
    with Store(dst, keys=ring(b)) as store:
        store.add_many(traffic("b-"))
    with Store(src, keys=Keyring()) as s, Store(dst, keys=Keyring()) as d:
        copy_store(s, d)  # no key needed: sealed bodies move as they are
    with Store(dst, keys=ring(b)) as store:
        with pytest.raises(StoreKeyError, match="sealed with key .* which was not given"):
            rekey(store, crypto.load_key_file(new))
        assert store.encryption_key_id() == crypto.load_key_file(b).id
    with Store(dst, keys=ring(a, b)) as store:
        assert len([ex.request for ex in store.query()]) == 6


def test_a_copy_keeps_bodies_sealed_and_readable_with_the_same_key(store_target, keys, tmp_path):
    from harness.store.transfer import copy_store

    key = make_key(keys)
    src = tmp_path / "src" / "c.db"
    with Store(src, keys=ring(key)) as store:
        store.add_many(traffic())
    with Store(src, keys=Keyring()) as s, Store(store_target, keys=Keyring()) as d:
        copy_store(s, d)
    with Store(store_target, keys=Keyring()) as d:
        assert d.encryption_key_id() == crypto.load_key_file(key).id  # the copy is encrypted as well
    with Store(store_target, keys=ring(key)) as d:
        assert [ex.request for ex in d.query()] == [GBK_BODY, FHIR_BODY, MEDINS_BODY]


def test_postgresql_holds_no_body_in_clear(pg_url, keys):
    import psycopg

    with Store(pg_url, keys=ring(make_key(keys))) as store:
        store.add_many(traffic())
    with psycopg.connect(pg_url) as conn:
        blobs = conn.execute("SELECT request, response, accept_response FROM exchanges").fetchall()
        dumped = b"".join(bytes(v) for row in blobs for v in row if v is not None)
    assert len(dumped) > 0 and [s for s in SECRETS if s in dumped] == []


# -- the capture writer (the proxy's path) ---------------------------------------------------------


@pytest.mark.parametrize("process", [False, True], ids=["thread", "process"])
def test_the_capture_writer_seals_with_the_configured_key(store_target, keys, process):
    source = KeySource(make_key(keys), None, "aes-256-gcm")
    written = traffic()
    with CaptureWriter(store_target, "durable", process=process, encryption=source) as writer:
        for ex in written:
            writer.submit(ex)
        assert writer.flush(30)
        done = dataclasses.replace(written[0], id=None, response=b"MSA|AA|G1|done\r")
        writer.submit(done, replaces=written[0])  # an enhanced-mode exchange completed in place
        assert writer.flush(30)
        assert writer.stats()["errors"] == 0
    with Store(store_target, keys=Keyring.from_sources([source])) as store:
        got = {ex.control_id: ex for ex in store.query()}
        assert store.info()["encryption"]["exchanges_by_key"] == {store.encryption_key_id(): 3}
    assert got["F1"].request == FHIR_BODY and got["M1"].request == MEDINS_BODY
    assert got["G1"].response == b"MSA|AA|G1|done\r" and got["G1"].request == GBK_BODY
    if isinstance(store_target, Path):
        assert [s for s in SECRETS if s in on_disk(store_target)] == []


@pytest.mark.parametrize("process", [False, True], ids=["thread", "process"])
def test_a_writer_without_the_stores_key_fails_at_start(tmp_path, keys, process, monkeypatch):
    monkeypatch.delenv(crypto.KEY_ENV, raising=False)
    monkeypatch.delenv(crypto.KEY_FILE_ENV, raising=False)
    path = tmp_path / "c.db"
    with Store(path, keys=ring(make_key(keys, "a.key"))) as store:
        store.add_many(traffic())
    with pytest.raises(StoreError, match="is encrypted"):
        CaptureWriter(path, "durable", process=process)
    with pytest.raises(StoreError, match="is not it"):
        CaptureWriter(path, "durable", process=process, encryption=KeySource(make_key(keys, "b.key")))


def test_a_batch_written_again_after_a_crash_is_not_stored_twice_when_sealed(tmp_path, keys):
    from harness.store.codec import _to_row
    from harness.store.sqlite import _commit_rows

    with Store(tmp_path / "c.db", keys=ring(make_key(keys))) as store:
        rows = [_to_row(ex) for ex in traffic()]
        commit = store.commit_rows
        first = commit(rows[:2])  # the dead process's transaction had committed these
        again = commit(rows, dedupe=True)
        assert again[:2] == first and isinstance(again[2], int) and again[2] not in first
        assert store.count() == 3
        assert [ex.request for ex in store.query()] == [GBK_BODY, FHIR_BODY, MEDINS_BODY]
    assert _commit_rows  # the module function the writer process runs, shared with the method above


def test_postgresql_dedupe_after_a_crash_compares_opened_requests(pg_url, keys):
    from harness.store.codec import _to_row

    with Store(pg_url, keys=ring(make_key(keys))) as store:
        rows = [_to_row(ex) for ex in traffic()]
        first = store.commit_rows(rows[:2])
        again = store.commit_rows(rows, dedupe=True)
        assert again[:2] == first and store.count() == 3


def test_a_store_written_before_encryption_existed_opens_and_migrates(tmp_path):
    """A version-5 file (no key_id column) keeps every body and reads as before."""
    from harness.store.schema import MIGRATIONS
    from harness.store.sqlite import _migrate

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    _migrate(conn, path, MIGRATIONS[:5])
    conn.execute(
        "INSERT INTO exchanges (channel, protocol, kind, started_at, request, outcome)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        ("adt", "mllp", "hl7v2", 1.0, GBK_BODY, "ok"),
    )
    conn.close()
    with Store(path, keys=Keyring()) as store:
        assert store.schema_version == len(MIGRATIONS) and [ex.request for ex in store.query()] == [GBK_BODY]
    os.remove(path)


def test_a_killed_writer_process_is_replaced_with_the_same_key(tmp_path, keys):
    import signal
    import time

    source = KeySource(make_key(keys, algorithm="sm4-gcm"), None, "sm4-gcm")
    path = tmp_path / "c.db"
    results: list = []
    writer = CaptureWriter(path, "durable", process=True, check_interval_s=0.05, encryption=source)
    try:
        batch = traffic()
        writer.submit(batch[0], results.append)
        assert writer.flush(30)
        first = writer._child.pid
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while writer._child.pid == first and time.monotonic() < deadline:
            time.sleep(0.02)
        assert writer._child.pid != first and writer._child.alive
        for ex in batch[1:]:
            writer.submit(ex, results.append)
        assert writer.flush(30)
    finally:
        writer.close()
    assert all(isinstance(r, int) for r in results) and len(results) == 3
    with Store(path, keys=Keyring.from_sources([source])) as store:
        assert [ex.request for ex in store.query()] == [GBK_BODY, FHIR_BODY, MEDINS_BODY]
        assert store.info()["encryption"]["exchanges_by_key"] == {store.encryption_key_id(): 3}


def test_keys_given_to_read_never_turn_a_store_in_clear_into_an_encrypted_one(tmp_path, keys):
    """A replay or import run with a key at hand writes in clear into a store other writers use in
    clear; an encrypted store it writes into gets sealed rows."""
    clear, sealed = tmp_path / "clear.db", tmp_path / "sealed.db"
    key = make_key(keys)
    with Store(clear, keys=ring(key, encrypts=False)) as store:
        store.add_many(traffic())
        assert store.encryption_key_id() is None
    with Store(sealed, keys=ring(key)) as store:
        store.add(traffic()[0])
    with Store(sealed, keys=ring(key, encrypts=False)) as store:
        store.add_many(traffic("r-"))
        assert store.info()["encryption"]["exchanges_by_key"] == {store.encryption_key_id(): 4}
