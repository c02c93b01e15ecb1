"""Replay and compare read and write a PostgreSQL store the way they do a SQLite file."""

from __future__ import annotations

import json
import subprocess
import sys

from harness.exchange import Exchange
from harness.store import ExchangeFilter, Store
from tests.processes import ROOT
from tests.replay.traffic import adt, received_ids, start_mock


def harness(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        [sys.executable, "-m", "harness", *args], cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def test_replay_and_compare_from_and_into_a_postgresql_store(processes, tmp_path, pg_url):
    originals = []
    for i in range(6):
        request = adt(i, f"P{i % 2}")
        ack = f"MSH|^~\\&|HC|HOSP|HIS|HOSP|||ACK|A{i}|P|2.5\rMSA|AA|MSG{i:05d}\r".encode()
        ex = Exchange(channel="adt", request=request, response=ack, ack_code="AA", message_type="ADT^A08",
                      control_id=f"MSG{i:05d}", charset="utf-8", proxy="his-a")  # fmt: skip
        ex.finish(ex.started_at + 0.002)
        originals.append(ex)
    with Store(pg_url) as store:
        store.add_many(originals)
    log = tmp_path / "target.log"
    target = start_mock(processes, log)
    proc = harness(
        "replay", "--unmasked", "--to", f"127.0.0.1:{target}", "--json", env={"HARNESS_STORE": pg_url}
    )
    assert proc.returncode == 1, proc.stderr  # the mock's ACKs differ from these hand-made ones
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (summary["selected"], summary["sent"], summary["different"], summary["new_error"]) == (6, 6, 6, 0)
    assert sorted(received_ids(log)) == [f"MSG{i:05d}" for i in range(6)]
    with Store(pg_url) as store:
        replays = list(store.query(ExchangeFilter(run_id=summary["run_id"])))
        assert sorted(r.original_id for r in replays) == [ex.id for ex in originals]
    compared = harness(
        "compare", "--unmasked", "capture", str(summary["run_id"]), "--store", pg_url, "--json"
    )
    assert compared.returncode == 1, compared.stdout + compared.stderr
    assert json.loads(compared.stdout)["different"] == 6  # the same verdict, read back from PostgreSQL
