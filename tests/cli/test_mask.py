"""`harness mask` on files and folders, and `--mask` on `capture show` and `capture export`."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.exchange import Exchange
from harness.mllp import MLLPDecoder
from harness.store import Store

from ..mask.support import ROOT, leaks

runner = CliRunner()
GBK = ROOT / "fixtures" / "hl7v2" / "adt_a01_gbk.hl7"
SECRETS = ["段亅乗", "530102198503152312", "13800000001", "ZY0001", "翠湖南路1号"]


@pytest.fixture
def key_env(monkeypatch, tmp_path):
    key = tmp_path / "keys" / "mask.key"
    result = runner.invoke(app, ["mask", "--new-key", str(key)])
    assert result.exit_code == 0, result.output
    monkeypatch.setenv("HARNESS_MASK_KEY_FILE", str(key))
    monkeypatch.delenv("HARNESS_MASK_KEY", raising=False)
    return key


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "data" / "captures.db"
    path.parent.mkdir()
    msg = GBK.read_bytes()
    ack = b"MSH|^~\\&|HC|H|HIS|H|20260315083001||ACK|A1|P|2.4||||||GBK\r"
    ack += b"MSA|AE|GBK0001|530102198503152312 unknown\r"
    body = (ROOT / "fixtures" / "fhir" / "patient.json").read_bytes()
    http = b"POST /fhir/Patient HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    with Store(path) as db:
        db.add(Exchange(channel="adt", request=msg, response=ack, charset="gb18030", control_id="GBK0001",
                        message_type="ADT^A01", ack_code="AE", outcome="nak"))  # fmt: skip
        db.add(Exchange(channel="fhir", protocol="http", kind="fhir", request=http, method="POST",
                        path="/fhir/Patient",
                        response=b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"))  # fmt: skip
        db.add(Exchange(channel="adt", request=b"PID|1||530102198503152312\r", outcome="malformed"))
    return path


def test_masking_a_folder_keeps_layout_and_framing_and_leaves_out_what_cannot_be_masked(key_env, tmp_path):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    (src / "a.hl7").write_bytes(GBK.read_bytes())
    (src / "sub" / "frames.mllp").write_bytes(
        b"\x0b" + GBK.read_bytes() + b"\x1c\r\n\x0b" + GBK.read_bytes() + b"\x1c\r"
    )
    (src / "notes.txt").write_text("not a message")
    out = tmp_path / "out"
    result = runner.invoke(app, ["mask", str(src), "--out", str(out), "--json"])
    assert result.exit_code == 1, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert lines[-1]["files"] == 2 and lines[-1]["not_written"] == 1 and lines[-1]["messages"] == 3
    assert not (out / "notes.txt").exists()
    masked = (out / "a.hl7").read_bytes()
    assert masked.decode("gb18030").count("\r") == GBK.read_bytes().count(b"\r") and not leaks(
        masked, SECRETS
    )
    frames = [e for e in MLLPDecoder().feed((out / "sub" / "frames.mllp").read_bytes())]
    assert [f.payload for f in frames] == [masked, masked]  # the same message masks the same every time
    again = runner.invoke(app, ["mask", str(src / "a.hl7"), "--out", str(out)])
    assert again.exit_code == 2 and "exists" in again.output


def test_without_a_key_or_with_a_bad_policy_nothing_is_written(tmp_path, monkeypatch, store):
    monkeypatch.delenv("HARNESS_MASK_KEY", raising=False)
    monkeypatch.delenv("HARNESS_MASK_KEY_FILE", raising=False)
    result = runner.invoke(app, ["mask", str(GBK), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "no masking key" in result.output and not (tmp_path / "o").exists()
    result = runner.invoke(
        app, ["capture", "export", "--store", str(store), "--out", str(tmp_path / "e"), "--mask"]
    )
    assert result.exit_code == 2 and "no masking key" in result.output and not (tmp_path / "e").exists()
    monkeypatch.setenv("HARNESS_MASK_KEY", "a-long-enough-secret-for-testing")
    result = runner.invoke(app, ["mask", str(GBK), "--out", str(tmp_path / "o"), "--policy", "nope"])
    assert result.exit_code == 2 and "masking policy 'nope' not found" in result.output


def test_capture_show_and_export_mask_every_format(key_env, store, tmp_path):
    shown = runner.invoke(app, ["capture", "show", "1", "--store", str(store), "--mask", "--json"])
    assert shown.exit_code == 0, shown.output
    view = json.loads(shown.output)
    assert not leaks(shown.output.encode("utf-8"), SECRETS) and view["request"].startswith("MSH|^~\\&|HIS|")
    raw = runner.invoke(app, ["capture", "show", "1", "--store", str(store), "--mask", "--raw", "--response"])
    assert raw.exit_code == 0 and not leaks(raw.stdout_bytes, SECRETS)
    for fmt in ("hl7", "mllp", "har", "mitm"):
        out = tmp_path / fmt
        args = ["capture", "export", "--store", str(store), "--out", str(out), "--format", fmt, "--mask"]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        data = b"".join(p.read_bytes() for p in out.iterdir())
        assert data and not leaks(data, [*SECRETS, "53010219850307123X", "周兰𬌗", "13800000000"]), fmt
    assert len(list((tmp_path / "hl7").iterdir())) == 1  # the malformed request is left out, not written
    unmasked = runner.invoke(app, ["capture", "show", "1", "--store", str(store), "--json", "--unmasked"])
    assert "530102198503152312" in unmasked.output  # with --unmasked, the capture as it is


def test_show_and_export_are_masked_by_default_in_every_format(key_env, store, tmp_path):
    for view in (["--json"], ["--raw"], ["--raw", "--response"], []):
        shown = runner.invoke(app, ["capture", "show", "1", "--store", str(store), *view])
        assert shown.exit_code == 0, shown.output
        assert not leaks(shown.stdout_bytes, SECRETS), view
    for fmt in ("hl7", "mllp", "har", "mitm"):
        out = tmp_path / fmt
        result = runner.invoke(
            app, ["capture", "export", "--store", str(store), "--out", str(out), "--format", fmt]
        )
        assert result.exit_code == 0, result.output
        data = b"".join(p.read_bytes() for p in out.iterdir())
        assert data and not leaks(data, [*SECRETS, "53010219850307123X", "周兰𬌗", "13800000000"]), fmt


def test_without_a_key_content_is_refused_unless_unmasked(monkeypatch, store, tmp_path):
    monkeypatch.delenv("HARNESS_MASK_KEY", raising=False)
    monkeypatch.delenv("HARNESS_MASK_KEY_FILE", raising=False)
    result = runner.invoke(app, ["capture", "export", "--store", str(store), "--out", str(tmp_path / "e")])
    assert result.exit_code == 2 and "--unmasked" in result.output and not (tmp_path / "e").exists()
    shown = runner.invoke(app, ["capture", "show", "1", "--store", str(store), "--json"])
    assert shown.exit_code == 2 and "530102198503152312" not in shown.output
    both = runner.invoke(app, ["capture", "show", "1", "--store", str(store), "--mask", "--unmasked"])
    assert both.exit_code == 2 and "cannot be combined" in both.output


def test_unmasked_output_is_recorded_in_the_audit_log(key_env, store, tmp_path, monkeypatch):
    from harness.audit import os_actor, verify
    from harness.audit.table import AuditTable

    monkeypatch.delenv("HARNESS_AUDIT_FILE", raising=False)
    out = tmp_path / "plain"
    args = ["capture", "export", "--store", str(store), "--out", str(out), "--format", "hl7", "--unmasked"]
    assert runner.invoke(app, args).exit_code == 0
    assert (
        runner.invoke(app, ["capture", "show", "1", "--store", str(store), "--unmasked", "--json"]).exit_code
        == 0
    )
    assert runner.invoke(app, ["capture", "show", "1", "--store", str(store), "--json"]).exit_code == 0
    with Store(store, create=False) as db:
        entries = list(AuditTable(db).entries())
    assert verify(entries).ok
    export, show_plain, show_masked = entries[-3:]
    assert export.action == "capture.export" and export.details["unmasked"] is True
    assert export.details["format"] == "hl7" and export.details["out"] == str(out.resolve())
    exported_ids = sorted(int(p.name.split("_")[0]) for p in out.iterdir())
    assert export.details["ids"] == exported_ids and export.details["exchanges"] == len(exported_ids)
    assert export.actor["user"] == os_actor()["user"] and export.host
    assert show_plain.action == "capture.show" and show_plain.details["unmasked"] is True
    assert show_plain.details["ids"] == [1]
    assert show_masked.details["unmasked"] is False and show_masked.details["policy"] == "default"
    assert show_masked.details["key_id"]  # the key named by its id, never the key
    listed = runner.invoke(app, ["audit", "list", "--store", str(store), "--unmasked", "--json"])
    assert [json.loads(line)["seq"] for line in listed.output.splitlines()] == [export.seq, show_plain.seq]


def test_validate_over_a_store_masks_the_values_its_findings_quote(key_env, tmp_path, monkeypatch):
    from harness.audit.table import AuditTable

    from ..mask.support import person_id

    monkeypatch.delenv("HARNESS_AUDIT_FILE", raising=False)
    idcard = person_id()
    msg = (
        "MSH|^~\\&|HIS|HOSP|HC|HOSP|20261124233000||ADT^A08^ADT_A01|MSG1|P|2.5|||||CHN|UNICODE UTF-8\r"
        f"PID|1||{idcard}^^^HOSP^MR||张^伟||19850307|张伟|||翠湖南路1号^^昆明^云南||{idcard}1\r"
    ).encode()
    path = tmp_path / "data" / "v.db"
    path.parent.mkdir()
    with Store(path) as db:
        db.add(
            Exchange(channel="adt", request=msg, message_type="ADT^A08", control_id="MSG1", charset="utf-8")
        )
    originals = ["张伟", idcard]
    plain = runner.invoke(app, ["validate", "--store", str(path), "--json", "--unmasked"])
    quoted = [f["actual"] for f in json.loads(plain.stdout)["messages"][0]["findings"]]
    assert "张伟" in quoted  # the finding quotes the patient's name (in PID-8, where it does not belong)
    masked = runner.invoke(app, ["validate", "--store", str(path), "--json"])
    assert masked.exit_code == 1, masked.output
    assert not leaks(masked.stdout_bytes, originals)
    codes = [f["code"] for f in json.loads(masked.stdout)["messages"][0]["findings"]]
    assert codes == [f["code"] for f in json.loads(plain.stdout)["messages"][0]["findings"]]
    html = tmp_path / "report.html"
    assert (
        runner.invoke(
            app, ["validate", "--store", str(path), "--format", "html", "--out", str(html)]
        ).exit_code
        == 1
    )
    assert not leaks(html.read_bytes(), originals)
    with Store(path, create=False) as db:
        entries = [e for e in AuditTable(db).entries() if e.action == "validate"]
    assert [e.details["unmasked"] for e in entries] == [True, False, False]
