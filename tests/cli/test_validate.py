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
    r = runner.invoke(app, ["validate", "--unmasked", "--store", str(db), "--format", "json", "--jobs", "2"])
    doc = json.loads(r.stdout)
    assert r.exit_code == 1 and doc["summary"]["messages"] == 30 and doc["summary"]["invalid"] == 10
    assert [m["index"] for m in doc["messages"]] == list(range(1, 31)), "input order kept across workers"
    r = runner.invoke(app, ["validate", "--unmasked", "--store", str(db), "--channel", "lab", "--json"])
    assert json.loads(r.stdout)["summary"]["messages"] == 10
    r = runner.invoke(
        app, ["validate", "--unmasked", "--store", str(db), "--channel", "adt", "--responses", "--json"]
    )
    doc = json.loads(r.stdout)
    assert doc["summary"]["messages"] == 40
    assert doc["summary"]["by_message_type"]["ACK^A01"]["invalid"] == 0
    assert runner.invoke(app, ["validate", "--unmasked", "--store", str(tmp_path / "none.db")]).exit_code == 2


def test_unreadable_file_is_a_finding(tmp_path):
    good = write(tmp_path, "good.hl7", GOOD.format(cid="1"))
    junk = write(tmp_path, "junk.hl7", '{"not": "hl7"}\n')
    r = runner.invoke(app, ["validate", str(good), str(junk), "--json"])
    assert r.exit_code == 1
    doc = json.loads(r.stdout)
    bad = [m for m in doc["messages"] if not m["valid"]]
    assert len(bad) == 1 and bad[0]["source"].endswith("junk.hl7")
    assert bad[0]["findings"][0]["code"] == "HL7-PARSE-FILE"


# a message with a warning only: MSH-15 (accept acknowledgment type) 'ZZ' is outside HL7 table 0155
WARN = (
    "MSH|^~\\&|HIS|H53|HC|H53|20240301083000||ADT^A01^ADT_A01|{cid}|P|2.5|||ZZ\r"
    "EVN|A01|20240301083000\rPID|1||P{cid}^^^H53^MR||ZHANG^SAN||19800101|M\rPV1|1|I\r"
)


def test_fail_on_sets_the_exit_code(tmp_path):
    path = write(tmp_path, "w.hl7", WARN.format(cid="1"))
    r = runner.invoke(app, ["validate", str(path), "--json"])
    doc = json.loads(r.stdout)
    assert doc["summary"]["warnings"] >= 1 and doc["summary"]["errors"] == 0
    assert r.exit_code == 0 and doc["summary"]["verdict"] == "PASS"
    r = runner.invoke(app, ["validate", str(path), "--fail-on", "warning", "--json"])
    assert r.exit_code == 1 and json.loads(r.stdout)["summary"]["verdict"] == "FAIL"
    bad = write(tmp_path, "b.hl7", BAD.format(cid="2"))
    assert runner.invoke(app, ["validate", str(bad), "--fail-on", "error"]).exit_code == 1
    r = runner.invoke(app, ["validate", str(path), "--fail-on", "info"])
    assert r.exit_code == 2 and "--fail-on 'info'" in r.output
    r = runner.invoke(app, ["validate", str(path), "--min-severity", "fatal"])
    assert r.exit_code == 2 and "--min-severity" in r.output


def test_a_waived_warning_no_longer_fails_on_warning(tmp_path):
    path = write(tmp_path, "w.hl7", WARN.format(cid="1"))
    codes = {
        f["code"]
        for f in json.loads(runner.invoke(app, ["validate", str(path), "--json"]).stdout)["messages"][0][
            "findings"
        ]
    }
    waiver_file = tmp_path / "waivers.yaml"
    lines = "".join(f"  - code: {c}\n    reason: accepted for the pilot\n" for c in sorted(codes))
    waiver_file.write_text("waivers:\n" + lines, encoding="utf-8")
    r = runner.invoke(app, ["validate", str(path), "--fail-on", "warning", "--waivers", str(waiver_file)])
    assert r.exit_code == 0, r.output
    assert "PASS:" in r.output and "waived" in r.output


def test_a_waiver_file_makes_a_known_deviation_pass_with_its_reason_in_every_report(tmp_path):
    path = write(tmp_path, "m.hl7", GOOD.format(cid="1"), BAD.format(cid="2"))
    r = runner.invoke(app, ["validate", str(path), "--json"])
    bad_codes = {
        f["code"] for f in json.loads(r.stdout)["messages"][1]["findings"] if f["severity"] == "error"
    }
    assert bad_codes == {"HL7-STRUCT-MISSING-SEGMENT", "HL7-FIELD-REQUIRED", "HL7-DATATYPE-DTM"}
    waiver_file = tmp_path / "waivers.yaml"
    waiver_file.write_text(
        "waivers:\n"
        "  - code: HL7-STRUCT-MISSING-SEGMENT\n    control_id: '2'\n    reason: 旧HIS不发送EVN段\n"
        "  - code: HL7-FIELD-REQUIRED\n    location: PID-3\n    reason: 患者ID在PID-2中发送\n"
        "  - code: HL7-DATATYPE-DTM\n    location: PID-7\n    reason: 出生日期只有年月\n"
        "    expires: 2099-01-01\n",
        encoding="utf-8",
    )
    r = runner.invoke(app, ["validate", str(path), "--waivers", str(waiver_file)])
    assert r.exit_code == 0, r.output
    assert "waived by waivers.yaml:5: 患者ID在PID-2中发送" in r.output
    r = runner.invoke(app, ["validate", str(path), "--waivers", str(waiver_file), "--json"])
    doc = json.loads(r.stdout)
    assert doc["summary"]["waived"] == 4 and doc["summary"]["invalid"] == 0  # EVN and PV1 missing
    assert [w["used"] for w in doc["run"]["waivers"]] == [2, 1, 1]
    html = tmp_path / "r.html"
    runner.invoke(app, ["validate", str(path), "--waivers", str(waiver_file), "-f", "html", "-O", str(html)])
    text = html.read_text(encoding="utf-8")
    assert "出生日期只有年月" in text and 'class="verdict PASS"' in text
    # named by a profile instead, relative to the profile file
    prof = tmp_path / "profile.yaml"
    prof.write_text("name: his\nwaivers: waivers.yaml\n", encoding="utf-8")
    r = runner.invoke(app, ["validate", str(path), "--profile", str(prof), "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["summary"]["waived"] == 4
    # a waiver without a reason is a usage error naming the file and entry
    waiver_file.write_text("waivers:\n  - code: HL7-FIELD-REQUIRED\n", encoding="utf-8")
    r = runner.invoke(app, ["validate", str(path), "--waivers", str(waiver_file)])
    assert r.exit_code == 2 and "waivers.yaml: waivers[1] (line 2).reason: required" in r.output


def test_min_severity_chooses_what_the_text_report_lists(tmp_path):
    path = write(tmp_path, "m.hl7", WARN.format(cid="1"), BAD.format(cid="2"))
    out = runner.invoke(app, ["validate", str(path), "--min-severity", "error"]).output
    assert "HL7-DATATYPE-DTM" in out and "valid   " not in out.split("\n\n")[0]
    out = runner.invoke(app, ["validate", str(path), "--min-severity", "warning"]).output
    assert out.index("INVALID") < out.index("valid   "), "failing messages are listed first"


def test_text_report_groups_repeated_codes_with_their_locations(tmp_path):
    obx = "".join(f"OBX|{i}|NM|GLU^Glucose^L||5.{i}|mmol/L|||||F|||2024130{i}\r" for i in range(1, 5))
    oru = (
        "MSH|^~\\&|LIS|H|HIS|H|20240301083000||ORU^R01^ORU_R01|L1|P|2.5.1\r"
        "PID|1||P1^^^H^MR||ZHANG^SAN||19800101|M\rOBR|1|O1|F1|GLU^Glucose^L|||20240301083000\r" + obx
    )
    path = write(tmp_path, "oru.hl7", oru)
    out = runner.invoke(app, ["validate", str(path)]).output
    line = next(x for x in out.splitlines() if "HL7-DATATYPE-DTM" in x and " x4 " in x)
    assert "4:OBX-14.1, 5:OBX-14.1, 6:OBX-14.1, 7:OBX-14.1" in line
    assert "e.g. Date/Time of the Observation, Time: '20241301' is not a valid DTM value" in out
