"""`harness validate` over real files and a real capture store: formats, exit codes, usage errors, --jobs."""

from __future__ import annotations

import json
from pathlib import Path

from lxml import etree
from typer.testing import CliRunner

from harness.cli import app
from harness.exchange import Exchange
from harness.store import Store

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]
GOOD = (
    "MSH|^~\\&|HIS|H53|HC|H53|20240301083000||ADT^A01^ADT_A01|{cid}|P|2.5\r"
    "EVN|A01|20240301083000\rPID|1||P{cid}^^^H53^MR||ZHANG^SAN||19800101|M\rPV1|1|I\r"
)
BAD = "MSH|^~\\&|HIS|H53|HC|H53|20240301083000||ADT^A01^ADT_A01|{cid}|P|2.5\rPID|1||||ZHANG||1980130|M\r"


def write(tmp_path: Path, name: str, *messages: str) -> Path:
    path = tmp_path / name
    path.write_bytes("".join(messages).encode())
    return path


def test_text_report_and_exit_codes(tmp_path):
    good = write(tmp_path, "good.hl7", GOOD.format(cid="1"), GOOD.format(cid="2"))
    r = runner.invoke(app, ["validate", str(good)])
    assert r.exit_code == 0, r.output
    assert "2 message(s): 2 valid, 0 invalid" in r.output
    bad = write(tmp_path, "bad.hl7", BAD.format(cid="9"))
    r = runner.invoke(app, ["validate", str(good), str(bad)])
    assert r.exit_code == 1
    assert "HL7-STRUCT-MISSING-SEGMENT" in r.output and "2:PID-3" in r.output
    assert "by code:" in r.output and "by message type:" in r.output


def test_json_report(tmp_path):
    path = write(tmp_path, "m.hl7", GOOD.format(cid="1"), BAD.format(cid="2"))
    r = runner.invoke(app, ["validate", str(path), "--format", "json"])
    assert r.exit_code == 1
    doc = json.loads(r.stdout)
    first, second = doc["messages"]
    assert (first["index"], first["valid"], first["control_id"], first["message_type"]) == (
        0,
        True,
        "1",
        "ADT^A01",
    )
    assert second["valid"] is False and second["source"].endswith("m.hl7")
    f = next(f for f in second["findings"] if f["code"] == "HL7-DATATYPE-DTM")
    assert set(f) >= {"severity", "code", "location", "message", "expected", "actual"}
    assert f["location"] == "2:PID-7.1" and f["actual"] == "1980130"
    s = doc["summary"]
    assert (s["messages"], s["valid"], s["invalid"]) == (2, 1, 1)
    assert s["by_code"]["HL7-DATATYPE-DTM"]["count"] == 1
    assert s["by_message_type"]["ADT^A01"]["invalid"] == 1


def test_junit_and_html(tmp_path):
    path = write(tmp_path, "m.hl7", GOOD.format(cid="1"), BAD.format(cid="2"))
    out = tmp_path / "r.xml"
    r = runner.invoke(app, ["validate", str(path), "--format", "junit", "--out", str(out)])
    assert r.exit_code == 1
    root = etree.fromstring(out.read_bytes())
    cases = root.findall(".//testcase")
    assert len(cases) == 2
    assert cases[0].find("failure") is None and cases[1].find("failure") is not None
    html = tmp_path / "r.html"
    r = runner.invoke(app, ["validate", str(path), "--format", "html", "--out", str(html)])
    text = html.read_text(encoding="utf-8")
    assert "HL7-DATATYPE-DTM" in text and "<style>" in text
    assert "http://" not in text and "https://" not in text and "<script src" not in text


def test_profile_and_version_options(tmp_path):
    path = write(tmp_path, "m.hl7", GOOD.format(cid="1"))
    profile = ROOT / "specs" / "hl7v2" / "lis-oru.yaml"
    r = runner.invoke(app, ["validate", str(path), "--profile", str(profile), "--format", "json"])
    assert r.exit_code == 1
    codes = {f["code"] for f in json.loads(r.stdout)["messages"][0]["findings"]}
    assert "PROFILE-MESSAGE-TYPE" in codes
    r = runner.invoke(app, ["validate", str(path), "--version", "2.9"])
    assert r.exit_code == 2 and "2.8.2" in r.output and "2.5.1" in r.output


def test_usage_errors(tmp_path):
    path = write(tmp_path, "m.hl7", GOOD.format(cid="1"))
    assert runner.invoke(app, ["validate"]).exit_code == 2
    assert runner.invoke(app, ["validate", str(tmp_path / "missing.hl7")]).exit_code == 2
    assert runner.invoke(app, ["validate", str(path), "--format", "pdf"]).exit_code == 2
    assert runner.invoke(app, ["validate", str(path), "--channel", "x"]).exit_code == 2
    bad_profile = tmp_path / "p.yaml"
    bad_profile.write_text("name: x\nfields:\n  PID8: {usage: R}\n", encoding="utf-8")
    r = runner.invoke(app, ["validate", str(path), "--profile", str(bad_profile)])
    assert r.exit_code == 2 and "p.yaml" in r.output


def test_store_with_filters_and_jobs(tmp_path):
    db = tmp_path / "cap.db"
    with Store(db) as st:
        for i in range(30):
            msg = (GOOD if i % 3 else BAD).format(cid=str(i))
            st.add(
                Exchange(
                    channel="adt" if i < 20 else "lab",
                    request=msg.encode(),
                    message_type="ADT^A01",
                    control_id=str(i),
                    started_at=1_700_000_000 + i,
                    response=f"MSH|^~\\&|HC|H|HIS|H|20240301||ACK^A01^ACK|A{i}|P|2.5\rMSA|AA|{i}\r".encode(),
                )
            )
    r = runner.invoke(app, ["validate", "--store", str(db), "--format", "json", "--jobs", "2"])
    doc = json.loads(r.stdout)
    assert r.exit_code == 1 and doc["summary"]["messages"] == 30 and doc["summary"]["invalid"] == 10
    assert [m["index"] for m in doc["messages"]] == list(range(1, 31)), "input order kept across workers"
    r = runner.invoke(app, ["validate", "--store", str(db), "--channel", "lab", "--json"])
    assert json.loads(r.stdout)["summary"]["messages"] == 10
    r = runner.invoke(app, ["validate", "--store", str(db), "--channel", "adt", "--responses", "--json"])
    doc = json.loads(r.stdout)
    assert doc["summary"]["messages"] == 40
    assert doc["summary"]["by_message_type"]["ACK^A01"]["invalid"] == 0
    assert runner.invoke(app, ["validate", "--store", str(tmp_path / "none.db")]).exit_code == 2


def test_unreadable_file_is_a_finding(tmp_path):
    good = write(tmp_path, "good.hl7", GOOD.format(cid="1"))
    junk = write(tmp_path, "junk.hl7", '{"not": "hl7"}\n')
    r = runner.invoke(app, ["validate", str(good), str(junk), "--json"])
    assert r.exit_code == 1
    doc = json.loads(r.stdout)
    bad = [m for m in doc["messages"] if not m["valid"]]
    assert len(bad) == 1 and bad[0]["source"].endswith("junk.hl7")
    assert bad[0]["findings"][0]["code"] == "HL7-PARSE-FILE"
