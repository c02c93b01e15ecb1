"""mitmproxy flow files and HAR: export read back by mitmproxy itself, import of what a real mitmdump
wrote (so a mitmweb session replays here), and `harness intercept` with a real mitmdump child."""

from __future__ import annotations

import http.client
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.exchange import Exchange
from harness.http_wire import build_head
from harness.store import ExchangeFilter, Store
from tests.ports import free_port, wait_for_port
from tests.processes import HARNESS, ROOT
from tests.proxy.http_setup import start_simulator

MITMDUMP = Path(sys.executable).with_name("mitmdump")
pytestmark = pytest.mark.skipif(
    not MITMDUMP.exists() and shutil.which("mitmdump") is None, reason="no mitmdump"
)


def harness(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*HARNESS, *args], capture_output=True, text=True, cwd=ROOT, timeout=120)


def sample_store(path: Path) -> None:
    body = json.dumps({"infno": "2207", "msgid": "H53010200123202601050930000007", "input": {}}).encode()
    answer = json.dumps(
        {"infcode": 0, "err_msg": "", "output": {"setlinfo": {"setl_id": "S1"}}}, ensure_ascii=False
    ).encode()
    gbk = "周兰𬌗".encode("gb18030")
    with Store(path) as store:
        store.add(
            Exchange(
                channel="medins",
                protocol="http",
                kind="medins",
                started_at=1767600000.0,
                ended_at=1767600000.02,
                latency_ms=20.0,
                client_addr="127.0.0.1:50000",
                upstream_addr="127.0.0.1:18080",
                request=build_head(
                    "POST /fsi/api/rsfComIfsService/callService HTTP/1.1",
                    [
                        ("Host", "hc.local:8080"),
                        ("Content-Type", "application/json"),
                        ("Content-Length", str(len(body))),
                    ],
                )
                + body,
                response=build_head(
                    "HTTP/1.1 200 OK",
                    [("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")],
                )
                + b"%x\r\n%s\r\n0\r\n\r\n" % (len(answer), answer),
                method="POST",
                path="/fsi/api/rsfComIfsService/callService",
                status=200,
                meta={"infno": "2207"},
            )
        )
        store.add(
            Exchange(
                channel="raw",
                protocol="http",
                kind="raw",
                started_at=1767600001.0,
                ended_at=1767600001.01,
                request=build_head(
                    "PUT /bin?x=1 HTTP/1.1", [("Host", "a:1"), ("Content-Length", str(len(gbk)))]
                )
                + gbk,
                response=build_head("HTTP/1.1 204 No Content", []),
                method="PUT",
                path="/bin?x=1",
                status=204,
            )
        )
        store.add(Exchange(channel="adt", request=b"MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5\r"))


def test_mitm_export_reads_back_in_mitmproxy_and_imports_again(tmp_path):
    from mitmproxy import io

    store = tmp_path / "a.db"
    sample_store(store)
    out = harness(
        "capture",
        "export",
        "--unmasked",
        "--store",
        str(store),
        "--out",
        str(tmp_path / "out"),
        "--format",
        "mitm",
    )
    assert out.returncode == 0 and "exported 2 HTTP exchanges" in out.stdout, out.stderr
    with open(tmp_path / "out" / "capture.mitm", "rb") as fh:
        flows = list(io.FlowReader(fh).stream())
    first = flows[0]
    assert first.request.method == "POST" and first.request.host == "hc.local" and first.request.port == 8080
    assert json.loads(first.request.content)["infno"] == "2207"
    assert first.response.status_code == 200 and json.loads(first.response.content)["infcode"] == 0
    assert flows[1].request.content == "周兰𬌗".encode("gb18030") and flows[1].response.status_code == 204

    back = harness(
        "capture",
        "import",
        str(tmp_path / "out" / "capture.mitm"),
        "--store",
        str(tmp_path / "b.db"),
        "--kind",
        "medins",
        "--channel",
        "from-mitm",
        "--json",
    )
    assert back.returncode == 0, back.stderr
    assert json.loads(back.stdout)["imported"] == 2
    with Store(tmp_path / "b.db") as db:
        rows = list(db.query(ExchangeFilter()))
    assert rows[0].meta["infno"] == "2207" and rows[0].ack_code == "0" and rows[0].outcome == "ok"
    assert rows[0].message_type == "2207" and rows[0].control_id == "H53010200123202601050930000007"
    assert rows[1].request.endswith("周兰𬌗".encode("gb18030")) and rows[1].status == 204


def test_har_export_and_import_round_trip(tmp_path):
    store = tmp_path / "a.db"
    sample_store(store)
    out = harness(
        "capture", "export", "--unmasked", "--store", str(store), "--out", str(tmp_path), "--format", "har"
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads((tmp_path / "capture.har").read_text(encoding="utf-8"))
    entries = doc["log"]["entries"]
    assert doc["log"]["version"] == "1.2" and len(entries) == 2
    assert entries[0]["request"]["url"] == "http://hc.local:8080/fsi/api/rsfComIfsService/callService"
    assert entries[1]["request"]["postData"]["encoding"] == "base64"
    assert entries[1]["request"]["queryString"] == [{"name": "x", "value": "1"}]
    back = harness(
        "capture", "import", str(tmp_path / "capture.har"), "--store", str(tmp_path / "b.db"), "--json"
    )
    assert back.returncode == 0 and json.loads(back.stdout)["format"] == "har"
    with Store(tmp_path / "b.db") as db:
        rows = list(db.query(ExchangeFilter()))
    assert rows[1].request.endswith("周兰𬌗".encode("gb18030")) and rows[0].status == 200
    bad = tmp_path / "bad.har"
    bad.write_text('{"log": {"entries": [{"request": {}}]}}')
    result = harness("capture", "import", str(bad), "--store", str(tmp_path / "c.db"))
    assert result.returncode == 2 and "entry 0" in result.stderr


def test_a_real_mitmdump_session_imports_and_replays_here(processes, tmp_path):
    fhir = start_simulator(processes, "fhir")
    port = free_port()
    flows = tmp_path / "session.mitm"
    proc = processes.start(
        [
            str(MITMDUMP),
            "--mode",
            f"reverse:http://127.0.0.1:{fhir}",
            "--listen-host",
            "127.0.0.1",
            "--listen-port",
            str(port),
            "-w",
            str(flows),
            "-q",
        ]
    )
    wait_for_port(port, proc=proc)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    body = json.dumps({"resourceType": "Patient", "gender": "male"}).encode()
    conn.request("POST", "/fhir/Patient", body, {"Content-Type": "application/fhir+json"})
    assert conn.getresponse().read() and True
    conn.request("GET", "/fhir/metadata")
    resp = conn.getresponse()
    assert resp.status == 200 and resp.read()
    conn.close()
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    store = tmp_path / "s.db"
    out = harness(
        "capture", "import", str(flows), "--store", str(store), "--kind", "fhir", "--channel", "fhir"
    )
    assert out.returncode == 0 and "imported 2" in out.stdout, out.stdout + out.stderr
    replay = harness(
        "replay", "--unmasked", "--store", str(store), "--to", f"http://127.0.0.1:{fhir}", "--json"
    )
    summary = json.loads(replay.stdout.splitlines()[-1])
    assert replay.returncode == 0 and summary["sent"] == 2, replay.stdout + replay.stderr


def test_intercept_runs_mitmdump_with_our_addon_writing_the_store(processes, tmp_path):
    fhir = start_simulator(processes, "fhir")
    port = free_port()
    store = tmp_path / "i.db"
    proc = processes.harness(
        "intercept", "--listen", f"127.0.0.1:{port}", "--store", str(store), "--kind", "fhir"
    )
    wait_for_port(port, proc=proc, timeout=30)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)  # a forward proxy: absolute URLs
    for path, status in (("/fhir/metadata", 200), ("/fhir/Patient/nope", 404)):
        conn.request("GET", f"http://127.0.0.1:{fhir}{path}")
        resp = conn.getresponse()
        assert resp.status == status and resp.read()
    conn.close()
    deadline = time.monotonic() + 30  # an upper bound only: the loop ends as soon as both rows are in
    rows: list = []
    while time.monotonic() < deadline and len(rows) < 2:
        time.sleep(0.2)
        if store.exists():
            with Store(store) as db:
                rows = list(db.query(ExchangeFilter()))
    assert [(r.meta.get("interaction"), r.status, r.channel) for r in rows] == [
        ("capabilities", 200, "intercept"),
        ("read", 404, "intercept"),
    ]
    assert rows[1].outcome == "nak" and rows[1].upstream_addr == f"127.0.0.1:{fhir}"
