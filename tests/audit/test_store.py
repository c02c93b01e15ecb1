"""The audit chain in real stores (SQLite files, PostgreSQL) and its JSON-lines copy; `harness audit
verify` run as a child process against files tampered with directly through sqlite3."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from concurrent.futures import ProcessPoolExecutor

import pytest

from harness.audit import record, verify
from harness.audit.table import AuditTable
from harness.store import Store
from tests.processes import HARNESS, ROOT


def entries(target) -> list:
    with Store(target, create=False) as store:
        return list(AuditTable(store).entries())


def verify_cli(store, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    environment = {k: v for k, v in os.environ.items() if k != "HARNESS_AUDIT_FILE"}
    environment.update(env or {})
    return subprocess.run(
        [*HARNESS, "audit", "verify", "--store", str(store), *extra],
        capture_output=True, text=True, timeout=60, cwd=ROOT, env=environment,
    )  # fmt: skip


def unprotect(path) -> sqlite3.Connection:
    """What someone with write access to the file can do: drop the append-only triggers."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("DROP TRIGGER audit_log_no_update")
    conn.execute("DROP TRIGGER audit_log_no_delete")
    return conn


@pytest.fixture
def store_file(tmp_path, monkeypatch):
    monkeypatch.delenv("HARNESS_AUDIT_FILE", raising=False)
    path = tmp_path / "captures.db"
    for i in range(5):
        record(path, "capture.export", str(path), {"ids": [i], "unmasked": i == 3})
    return path


def test_entries_chain_in_a_sqlite_file_and_name_who_and_where(store_file):
    got = entries(store_file)
    assert [e.seq for e in got] == [1, 2, 3, 4, 5]
    assert verify(got).ok
    assert got[0].actor["user"] and isinstance(got[0].actor["uid"], int) and got[0].host
    with Store(store_file) as store:
        assert {e.store for e in got} == {store.store_id}


def test_the_table_refuses_update_and_delete(store_file):
    conn = sqlite3.connect(store_file, isolation_level=None)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE audit_log SET host = 'x' WHERE seq = 2")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM audit_log WHERE seq = 2")
    conn.close()
    assert verify(entries(store_file)).ok


def _record_many(args) -> int:
    path, worker = args
    for i in range(10):
        record(path, "replay", f"worker {worker}", {"i": i})
    return worker


def test_processes_recording_at_once_make_one_linear_chain(tmp_path, monkeypatch):
    monkeypatch.delenv("HARNESS_AUDIT_FILE", raising=False)
    path = tmp_path / "captures.db"
    Store(path).close()
    with ProcessPoolExecutor(3) as pool:
        assert sorted(pool.map(_record_many, [(path, w) for w in range(3)])) == [0, 1, 2]
    got = entries(path)
    assert [e.seq for e in got] == list(range(1, 31))
    assert verify(got).ok


def test_verify_passes_on_a_whole_chain_and_prints_the_head_hash(store_file):
    result = verify_cli(store_file)
    assert result.returncode == 0, result.stderr
    head = entries(store_file)[-1]
    assert f"seq 5 sha256 {head.hash}" in result.stdout
    assert verify_cli(store_file, "--anchor", head.hash).returncode == 0


@pytest.mark.parametrize(
    ("tamper", "seq", "kind"),
    [
        ('UPDATE audit_log SET details = \'{"ids":[3],"unmasked":false}\' WHERE seq = 4', 4, "changed"),
        ('UPDATE audit_log SET actor = \'{"uid":0,"user":"nobody"}\' WHERE seq = 2', 2, "changed"),
        ("DELETE FROM audit_log WHERE seq = 3", 3, "removed"),
        (
            "UPDATE audit_log SET seq = 10 WHERE seq = 2; UPDATE audit_log SET seq = 2 WHERE seq = 3;"
            " UPDATE audit_log SET seq = 3 WHERE seq = 10",
            2,
            "changed",
        ),
    ],
    ids=["unmasked-hidden", "actor-changed", "removed", "reordered"],
)
def test_tampering_with_the_sqlite_file_is_caught_and_located(store_file, tamper, seq, kind):
    conn = unprotect(store_file)
    conn.executescript(tamper)
    conn.close()
    result = verify_cli(store_file, "--json")
    assert result.returncode == 1, result.stdout + result.stderr
    verdict = json.loads(result.stdout)
    assert not verdict["ok"]
    first = verdict["problems"][0]
    assert (first["kind"], first["seq"]) == (kind, seq)
    text = verify_cli(store_file)
    assert text.returncode == 1 and f"entry {seq}" in text.stdout


def test_a_rewritten_entry_with_a_fresh_hash_is_caught_at_the_next_link(store_file):
    from dataclasses import replace

    from harness.audit.chain import digest

    second = entries(store_file)[1]
    forged = replace(second, details={"ids": [], "unmasked": False})
    forged = replace(forged, hash=digest(forged.body()))
    conn = unprotect(store_file)
    conn.execute(
        "UPDATE audit_log SET details = ?, hash = ? WHERE seq = 2",
        (json.dumps(dict(forged.details), sort_keys=True, separators=(",", ":")), forged.hash),
    )
    conn.close()
    verdict = json.loads(verify_cli(store_file, "--json").stdout)
    assert (verdict["problems"][0]["kind"], verdict["problems"][0]["seq"]) == ("unlinked", 3)


def test_the_last_entries_cut_off_are_caught_by_the_anchor_or_the_copy(tmp_path, monkeypatch):
    copy = tmp_path / "log" / "audit.jsonl"
    monkeypatch.setenv("HARNESS_AUDIT_FILE", str(copy))
    path = tmp_path / "captures.db"
    for i in range(4):
        record(path, "compare", "capture vs 1", {"i": i})
    head = entries(path)[-1].hash
    assert verify_cli(path, env={"HARNESS_AUDIT_FILE": str(copy)}).returncode == 0
    conn = unprotect(path)
    conn.execute("DELETE FROM audit_log WHERE seq = 4")
    conn.close()
    assert verify_cli(path).returncode == 0  # the limit: a chain alone cannot see its end cut off
    anchored = verify_cli(path, "--anchor", head)
    assert anchored.returncode == 1 and "anchored head hash" in anchored.stdout
    with_copy = verify_cli(path, "--file", str(copy), "--json")
    assert with_copy.returncode == 1
    assert [(p["kind"], p["seq"]) for p in json.loads(with_copy.stdout)["problems"]] == [("removed", 4)]


def test_the_json_lines_copy_is_checked_and_compared(tmp_path, monkeypatch):
    copy = tmp_path / "log" / "audit.jsonl"
    monkeypatch.setenv("HARNESS_AUDIT_FILE", str(copy))
    path = tmp_path / "captures.db"
    for i in range(4):
        record(path, "capture.export", str(path), {"i": i})
    assert oct(copy.stat().st_mode & 0o777) == "0o600"
    lines = copy.read_text().splitlines()
    assert [json.loads(line)["seq"] for line in lines] == [1, 2, 3, 4]
    assert verify_cli(path, "--file", str(copy)).returncode == 0
    edited = lines.copy()
    edited[1] = edited[1].replace('"i":1', '"i":7')
    copy.write_text("\n".join(edited) + "\n")
    result = verify_cli(path, "--file", str(copy), "--json")
    kinds = [(p["kind"], p["seq"]) for p in json.loads(result.stdout)["problems"]]
    assert result.returncode == 1 and kinds[0] == ("changed", 2) and ("mismatch", 2) in kinds
    copy.write_text("\n".join([lines[0], lines[2], lines[3]]) + "\n")
    result = verify_cli(path, "--file", str(copy), "--json")
    assert ("removed", 2) in [(p["kind"], p["seq"]) for p in json.loads(result.stdout)["problems"]]
    copy.write_text("\n".join([lines[0], lines[2], lines[1], lines[3]]) + "\n")
    result = verify_cli(path, "--file", str(copy), "--json")
    assert json.loads(result.stdout)["problems"][0]["kind"] == "reordered"


def test_audit_list_filters_by_action_time_and_unmasked(store_file):
    def listed(*extra):
        out = subprocess.run(
            [*HARNESS, "audit", "list", "--store", str(store_file), "--json", *extra],
            capture_output=True, text=True, timeout=60, cwd=ROOT,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        return [json.loads(line) for line in out.stdout.splitlines()]

    assert len(listed()) == 5
    assert [e["seq"] for e in listed("--unmasked")] == [4]
    assert listed("--action", "replay") == []
    assert len(listed("--action", "capture.")) == 5
    assert listed("--since", "+1h") == []
    assert len(listed("--until", "now")) == 5


def test_a_store_without_an_audit_log_verifies_empty_and_reading_creates_nothing(tmp_path):
    path = tmp_path / "captures.db"
    Store(path).close()
    result = verify_cli(path)
    assert result.returncode == 0 and "0 entries" in result.stdout
    with Store(path) as store:
        assert not AuditTable(store).exists()


def test_the_chain_in_postgresql(pg_server, monkeypatch):
    monkeypatch.delenv("HARNESS_AUDIT_FILE", raising=False)
    url = pg_server.create_database()
    for i in range(4):
        record(url, "fault.add", "channel adt", {"i": i})
    got = entries(url)
    assert [e.seq for e in got] == [1, 2, 3, 4] and verify(got).ok
    assert verify_cli(url).returncode == 0
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        with pytest.raises(psycopg.Error, match="append-only"):
            conn.execute("UPDATE audit_log SET host = 'x' WHERE seq = 2")
        with pytest.raises(psycopg.Error, match="append-only"):
            conn.execute("TRUNCATE audit_log")
        conn.execute("ALTER TABLE audit_log DISABLE TRIGGER USER")
        conn.execute("UPDATE audit_log SET target = 'channel lab' WHERE seq = 3")
    result = verify_cli(url, "--json")
    assert result.returncode == 1
    assert (json.loads(result.stdout)["problems"][0]["seq"]) == 3


def test_nothing_in_the_chain_holds_a_secret(tmp_path, monkeypatch):
    monkeypatch.delenv("HARNESS_AUDIT_FILE", raising=False)
    from harness.audit import os_actor, token_fingerprint

    token = "s3cret-admin-token-0123456789"
    path = tmp_path / "captures.db"
    record(path, "fault.clear", "channel adt", {}, actor={**os_actor(), "token": token_fingerprint(token)})
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert token.encode() not in raw
    assert token_fingerprint(token).startswith("sha256:") and len(token_fingerprint(token)) == 23
