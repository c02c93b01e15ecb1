"""Recording fails closed for commands (nothing written when the entry cannot be) and loudly for the
admin API (the change is made, the answer says it is unrecorded); the admin API's calls, sans-IO."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from harness.audit.table import AuditTable
from harness.cli import app
from harness.exchange import Exchange
from harness.proxy.admin import AdminAPI, AdminChannel
from harness.proxy.faults.engine import FaultEngine
from harness.proxy.stats import ChannelStats
from harness.store import Store

TOKEN = "audit-recording-token-0123456789"
AUTH = f"Bearer {TOKEN}"


def api(audit) -> AdminAPI:
    channel = AdminChannel(
        "adt", "mllp", "127.0.0.1:2575", ["127.0.0.1:12575"], ChannelStats(), FaultEngine("adt")
    )
    return AdminAPI({"adt": channel}, TOKEN, audit=audit)


def test_every_fault_change_calls_the_audit_with_the_token_fingerprint_not_the_token():
    calls = []
    admin = api(lambda *args: calls.append(args))
    rule = json.dumps({"id": "n1", "action": {"type": "nak", "code": "AE"}}).encode()
    assert admin.handle("POST", "/channels/adt/faults", AUTH, rule).status == 201
    assert admin.handle("GET", "/channels/adt/faults", AUTH).status == 200  # reading is not a change
    assert admin.handle("DELETE", "/channels/adt/faults/n1", AUTH).status == 200
    admin.handle("POST", "/channels/adt/faults", AUTH, rule)
    assert admin.handle("POST", "/channels/adt/faults/reset", AUTH).status == 200
    assert admin.handle("DELETE", "/channels/adt/faults/none", AUTH).status == 404  # nothing changed
    assert [c[0] for c in calls] == ["fault.add", "fault.remove", "fault.add", "fault.clear"]
    action, target, details, actor = calls[-1]
    assert target == "channel adt" and [r["id"] for r in details["rules"]] == ["n1"]
    assert actor["via"] == "admin API" and actor["token"].startswith("sha256:")
    assert TOKEN not in json.dumps(calls)


def test_an_unrecordable_fault_change_is_made_and_says_so():
    def refuse(*_):
        raise RuntimeError("store unreachable")

    admin = api(refuse)
    rule = json.dumps({"action": {"type": "drop"}}).encode()
    answer = admin.handle("POST", "/channels/adt/faults", AUTH, rule)
    assert answer.status == 201
    assert "not recorded in the audit log: store unreachable" in answer.json()["audit_error"]
    assert len(admin.channels["adt"].faults) == 1


def test_an_export_whose_audit_entry_cannot_be_written_writes_nothing(tmp_path, monkeypatch):
    store = tmp_path / "captures.db"
    with Store(store) as db:
        db.add(Exchange(channel="adt", request=b"MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5\rPID|1||X1\r"))
    blocked = tmp_path / "not-a-file"
    blocked.mkdir()
    monkeypatch.setenv("HARNESS_AUDIT_FILE", str(blocked))  # a folder: the copy cannot be appended to
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["capture", "export", "--store", str(store), "--out", str(out), "--unmasked"]
    )
    assert result.exit_code == 2 and "nothing written" in result.output
    assert not out.exists() or not any(out.iterdir())
    shown = CliRunner().invoke(app, ["capture", "show", "1", "--store", str(store), "--unmasked", "--raw"])
    assert shown.exit_code == 2 and b"X1" not in shown.stdout_bytes
    monkeypatch.delenv("HARNESS_AUDIT_FILE")
    with Store(store) as db:
        assert list(AuditTable(db).entries()) == []
