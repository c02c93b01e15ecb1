"""A real proxy child process records its start and stop (with its config's hash) and every fault rule
change made through its admin API, naming the token by its fingerprint, never the token."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess

from harness.audit import token_fingerprint, verify
from harness.audit.table import AuditTable
from harness.store import Store
from tests.ports import free_port
from tests.processes import HARNESS, ROOT
from tests.proxy.proxy_process import start_proxy, write_config

TOKEN = "audit-test-token-0123456789abcdef"


def fault(*args: str, admin: str) -> dict:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HARNESS_ADMIN_TOKEN": TOKEN}
    out = subprocess.run(
        [*HARNESS, "fault", *args, "--admin", admin, "--json"],
        capture_output=True, text=True, timeout=60, cwd=ROOT, env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout) if out.stdout.strip() else {}


def test_fault_changes_and_the_proxy_lifetime_are_in_the_audit_log(processes, tmp_path):
    admin_port = free_port()
    store = tmp_path / "captures.db"
    copy = tmp_path / "log" / "audit.jsonl"
    config, port = write_config(
        tmp_path,
        upstream=f"127.0.0.1:{free_port()}",
        store=store,
        admin={"listen": f"127.0.0.1:{admin_port}"},
    )
    env = {"HARNESS_ADMIN_TOKEN": TOKEN, "HARNESS_AUDIT_FILE": str(copy)}
    proc = start_proxy(processes, config, port, env=env)
    from tests.ports import wait_for_port

    wait_for_port(admin_port, proc=proc)
    admin = f"http://127.0.0.1:{admin_port}"
    fault("add", "adt", "--type", "nak", "--code", "AR", "--text", "ward closed", admin=admin)
    fault("add", "adt", "--type", "drop", admin=admin)
    fault("remove", "adt", "r1", admin=admin)
    fault("clear", "adt", admin=admin)
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)

    with Store(store, create=False) as db:
        entries = list(AuditTable(db).entries())
    assert verify(entries).ok
    actions = [e.action for e in entries]
    assert actions == ["proxy.start", "fault.add", "fault.add", "fault.remove", "fault.clear", "proxy.stop"]
    start = entries[0]
    assert start.details["config_sha256"] == hashlib.sha256(config.read_bytes()).hexdigest()
    assert start.details["channels"]["adt"]["listen"] == f"127.0.0.1:{port}"
    for entry in entries[1:5]:
        assert entry.target == "channel adt"
        assert entry.actor["token"] == token_fingerprint(TOKEN) and entry.actor["via"] == "admin API"
    assert entries[1].details["rules"][0]["action"]["type"] == "nak"
    assert entries[3].details["rule"]["id"] == "r1"
    assert [r["id"] for r in entries[4].details["rules"]] == ["r2"]
    # the copy holds the same entries, and the token is nowhere
    lines = [json.loads(line) for line in copy.read_text().splitlines()]
    assert [line["hash"] for line in lines] == [e.hash for e in entries]
    for path in [*tmp_path.iterdir(), copy]:
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path
    verified = subprocess.run(
        [*HARNESS, "audit", "verify", "--store", str(store), "--file", str(copy)],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "6 entries, whole" in verified.stdout
