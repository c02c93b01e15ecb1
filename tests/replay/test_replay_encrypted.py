"""Replay and compare on an encrypted capture store: `harness replay` (a child process) opens the sealed
originals with the store key, re-sends them to a real `harness mock mllp`, and stores its replays sealed
with the same key; without the key it exits 2 before sending anything."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from harness.exchange import Exchange
from harness.hl7v2.meta import extract
from harness.store import Store, crypto
from tests.processes import ROOT
from tests.replay.traffic import adt, received_ids, start_mock


def harness(*args: str) -> subprocess.CompletedProcess:
    """`harness ARGS --unmasked`: these tests are about the store key, not masking."""
    return subprocess.run(
        [sys.executable, "-m", "harness", *args, "--unmasked"], cwd=ROOT, capture_output=True, text=True,
        timeout=90,
    )


def test_replay_and_compare_an_encrypted_store_with_its_key(processes, tmp_path):
    (tmp_path / "keys").mkdir()
    key = crypto.new_key_file(tmp_path / "keys" / "store.key")
    store = tmp_path / "data" / "cap.db"
    sent = [adt(i, f"P{i % 3}") for i in range(6)]
    with Store(store, keys=crypto.Keyring([key], encrypts=True)) as db:
        db.add_many([
            Exchange(channel="adt", request=m, control_id=extract(m).control_id, message_type="ADT^A08",
                     response=b"MSH|^~\\&|HC|HOSP|HIS|HOSP|20261124233000||ACK|A1|P|2.5\rMSA|AA|"
                     + extract(m).control_id.encode() + b"\r", ack_code="AA")
            for m in sent
        ])  # fmt: skip
    log = tmp_path / "mock.log"
    target = start_mock(processes, log)
    refused = harness("replay", "--store", str(store), "--to", f"127.0.0.1:{target}", "--json")
    assert refused.returncode == 2 and f"is encrypted (key id {key.id}" in refused.stderr
    assert received_ids(log) == []  # nothing was sent
    keyed = ["--store-key-file", str(tmp_path / "keys" / "store.key")]
    runs = []
    for _ in range(2):
        proc = harness("replay", "--store", str(store), "--to", f"127.0.0.1:{target}", "--json", *keyed)
        assert proc.returncode in (0, 1), proc.stderr  # 1: the mock's ACKs differ from the captured ones
        summary = json.loads(proc.stdout.strip().splitlines()[-1])
        assert summary["sent"] == 6 and summary["missing"] == summary["new_error"] == 0
        runs.append(summary["run_id"])
    assert sorted(received_ids(log)) == sorted(extract(m).control_id for m in sent * 2)
    with Store(store, keys=crypto.Keyring([key])) as db:
        assert db.info()["encryption"]["exchanges_by_key"] == {key.id: 18}  # the replays are sealed too
    compared = harness("compare", str(runs[0]), str(runs[1]), "--store", str(store), "--json", *keyed)
    assert compared.returncode == 0, compared.stdout + compared.stderr
    result = json.loads(compared.stdout)
    assert result["exact"] + result["equivalent"] == 6
    assert harness("compare", str(runs[0]), str(runs[1]), "--store", str(store)).returncode == 2
    raw = b"".join(Path(f"{store}{s}").read_bytes() for s in ("", "-wal") if Path(f"{store}{s}").exists())
    assert b"Patient^P1" not in raw and b"PID|1||" not in raw
