"""An encrypted capture store through the real CLI: keys from options and the environment, exit 2 with
the way out when the key is missing, wrong or too open, `store keygen|rekey|info`, and the reading
commands (capture, validate, inspect, mask) given the key."""

from __future__ import annotations

import json
import os

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.exchange import Exchange
from harness.store import Store, crypto

runner = CliRunner()
NAME = "诸葛明亮"
BODY = (
    "MSH|^~\\&|HIS|H1|HC|H2|20261125||ADT^A01|C1|P|2.5|||||CHN|GBK\r"
    f"EVN|A01|20261125\rPID|1||P-ZQX-55^^^HIS||{NAME}||19800101|M\r"
).encode("gbk")

ACK = b"MSH|^~\\&|HC|H2|HIS|H1|20261125||ACK^A01|A1|P|2.5\rMSA|AA|C1\r"


@pytest.fixture(autouse=True)
def no_key_in_the_environment(monkeypatch):
    monkeypatch.delenv(crypto.KEY_ENV, raising=False)
    monkeypatch.delenv(crypto.KEY_FILE_ENV, raising=False)


@pytest.fixture
def sealed(tmp_path):
    """(store, key file, key id): an encrypted store of three HL7 v2 exchanges, its key kept apart."""
    (tmp_path / "keys").mkdir()
    key = tmp_path / "keys" / "store.key"
    made = runner.invoke(app, ["store", "keygen", str(key)])
    assert made.exit_code == 0, made.output
    kid = crypto.load_key_file(key).id
    assert kid in made.output and key.stat().st_mode & 0o777 == 0o600
    store = tmp_path / "data" / "c.db"
    with Store(store, keys=crypto.Keyring([crypto.load_key_file(key)], encrypts=True)) as db:
        db.add_many([
            Exchange(channel="adt", request=BODY.replace(b"C1", f"C{i}".encode()), control_id=f"C{i}",
                     message_type="ADT^A01", charset="gbk", response=ACK, ack_code="AA")
            for i in range(1, 4)
        ])  # fmt: skip
    return store, key, kid


def capture(*args: str, env: dict | None = None):
    """`harness capture ARGS`, content commands --unmasked: these tests are about the store key alone."""
    unmasked = ["--unmasked"] if args[0] in ("show", "export") else []
    return runner.invoke(app, ["capture", *args, *unmasked], env=env)


def test_with_the_key_every_body_reads_and_without_it_the_command_says_how(sealed, tmp_path):
    store, key, kid = sealed
    shown = capture("show", "1", "--store", str(store), "--store-key-file", str(key))
    assert shown.exit_code == 0, shown.output
    assert NAME in shown.output
    missing = capture("show", "1", "--store", str(store))
    assert missing.exit_code == 2
    assert f"is encrypted (key id {kid}" in missing.output and "--store-key-file" in missing.output
    assert NAME not in missing.output
    # metadata needs no key
    listed = capture("list", "--store", str(store), "--json")
    assert listed.exit_code == 0 and listed.output.count('"control_id": "C') == 3
    out = tmp_path / "export"
    exported = capture("export", "--store", str(store), "--out", str(out))
    assert exported.exit_code == 2 and "is encrypted" in exported.output
    exported = capture("export", "--store", str(store), "--out", str(out), "--store-key-file", str(key))
    assert exported.exit_code == 0, exported.output
    assert sorted(p.read_bytes() for p in out.iterdir())[0] == BODY


def test_a_wrong_key_is_exit_2_naming_both_keys(sealed, tmp_path):
    store, _, kid = sealed
    other = tmp_path / "keys" / "other.key"
    crypto.new_key_file(other)
    result = capture("show", "1", "--store", str(store), "--store-key-file", str(other))
    assert result.exit_code == 2
    assert f"encrypted with key {kid}" in result.output and crypto.load_key_file(other).id in result.output
    assert NAME not in result.output


def test_a_key_file_others_can_read_is_exit_2_with_the_fix(sealed):
    store, key, _ = sealed
    os.chmod(key, 0o644)
    result = capture("show", "1", "--store", str(store), "--store-key-file", str(key))
    assert result.exit_code == 2 and f"chmod 600 {key}" in result.output


def test_the_key_from_the_environment(sealed):
    store, key, _ = sealed
    by_file = capture("show", "2", "--store", str(store), env={crypto.KEY_FILE_ENV: str(key)})
    assert by_file.exit_code == 0 and NAME in by_file.output, by_file.output
    value = key.read_text().strip()
    by_value = capture("show", "2", "--store", str(store), env={crypto.KEY_ENV: value})
    assert by_value.exit_code == 0 and NAME in by_value.output
    named = capture("show", "2", "--store", str(store), "--store-key-env", "MY_STORE_KEY",
                    env={"MY_STORE_KEY": value})  # fmt: skip
    assert named.exit_code == 0 and NAME in named.output
    # a key given to one command is not left behind for the next
    assert capture("show", "2", "--store", str(store)).exit_code == 2


def test_rekey_through_the_cli_retires_the_old_key(sealed, tmp_path):
    store, key, kid = sealed
    new = tmp_path / "keys" / "new.key"
    assert runner.invoke(app, ["store", "keygen", str(new), "--algorithm", "sm4-gcm"]).exit_code == 0
    no_old = runner.invoke(app, ["store", "rekey", "-s", str(store), "--new-key-file", str(new)])
    assert no_old.exit_code == 2 and f"sealed with key {kid}" in no_old.output
    done = runner.invoke(
        app,
        ["store", "rekey", "-s", str(store), "--store-key-file", str(key), "--new-key-file", str(new),
         "--json"],  # fmt: skip
    )
    assert done.exit_code == 0, done.output
    result = json.loads(done.output.splitlines()[-1])
    assert result["resealed"] == 3 and result["left"] == 0 and result["algorithm"] == "sm4-gcm"
    assert capture("show", "1", "--store", str(store), "--store-key-file", str(key)).exit_code == 2
    shown = capture("show", "1", "--store", str(store), "--store-key-file", str(new))
    assert shown.exit_code == 0 and NAME in shown.output
    info = runner.invoke(app, ["store", "info", "-s", str(store)])
    assert info.exit_code == 0 and f"sm4-gcm (key id {result['key_id']})" in info.output


def test_the_new_key_must_not_live_beside_the_store(sealed):
    store, key, _ = sealed
    beside = store.parent / "new.key"
    crypto.new_key_file(beside)
    result = runner.invoke(
        app, ["store", "rekey", "-s", str(store), "--store-key-file", str(key), "--new-key-file", str(beside)]
    )
    assert result.exit_code == 2 and "beside the store" in result.output


def test_validate_inspect_and_mask_read_an_encrypted_store_with_its_key(sealed, tmp_path):
    store, key, _ = sealed
    checked = runner.invoke(
        app, ["validate", "--store", str(store), "--json", "--unmasked", "--store-key-file", str(key)]
    )
    assert checked.exit_code in (0, 1), checked.output
    assert checked.output.count('"control_id": "C') == 3
    assert runner.invoke(app, ["validate", "--store", str(store), "--json", "--unmasked"]).exit_code == 2
    inspected = runner.invoke(app, ["inspect", "--store", str(store), "--json", "--store-key-file", str(key)])
    assert inspected.exit_code == 0, inspected.output
    mask_key = tmp_path / "keys" / "mask.key"
    from harness.mask import key as mask_keys

    mask_keys.new(mask_key)
    out = tmp_path / "masked" / "m.db"
    masked = runner.invoke(
        app,
        ["mask", str(store), "--out", str(out), "--key-file", str(mask_key), "--store-key-file", str(key)],
    )
    assert masked.exit_code == 0, masked.output
    with Store(out, keys=crypto.Keyring()) as copy:  # masked for sharing: in clear, holding pseudonyms
        bodies = [ex.request for ex in copy.query()]
        assert copy.encryption_key_id() is None
    assert len(bodies) == 3 and not any(NAME.encode("gbk") in b for b in bodies)
    refused = runner.invoke(app, ["mask", str(store), "--out", str(tmp_path / "masked" / "n.db"),
                                  "--key-file", str(mask_key)])  # fmt: skip
    assert refused.exit_code == 2 and "is encrypted" in refused.output


def test_store_info_says_what_is_sealed_without_a_key(sealed):
    store, _, kid = sealed
    info = runner.invoke(app, ["store", "info", "-s", str(store), "--json"])
    assert info.exit_code == 0
    assert json.loads(info.output)["encryption"] == {
        "key_id": kid, "algorithm": "aes-256-gcm", "exchanges_by_key": {kid: 3},
    }  # fmt: skip


def test_a_changed_body_is_exit_2_naming_the_exchange_never_garbage(sealed):
    import sqlite3

    store, key, _ = sealed
    with sqlite3.connect(store) as conn:
        (blob,) = conn.execute("SELECT request FROM exchanges WHERE id = 2").fetchone()
        conn.execute("UPDATE exchanges SET request = ? WHERE id = 2", (blob[:-1] + bytes([blob[-1] ^ 1]),))
    result = capture("export", "--store", str(store), "--out", str(store.parent / "x"), "--store-key-file",
                     str(key))  # fmt: skip
    assert result.exit_code == 2
    assert "exchange 2: its request does not open" in result.output
    shown = capture("show", "1", "--store", str(store), "--store-key-file", str(key))
    assert shown.exit_code == 0 and NAME in shown.output  # the other exchanges still read
