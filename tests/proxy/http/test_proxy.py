"""The HTTP proxy as a child process in front of the real simulators, driven by clients nobody here
wrote (curl, http.client, zeep): forwarding, keep-alive, streaming, capture, errors, bad input."""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import subprocess
import time

import pytest

from harness.store import ExchangeFilter, Store
from tests.ports import free_port
from tests.processes import HARNESS, ROOT, Processes
from tests.proxy.http_setup import (
    MEDINS_PATH,
    EchoUpstream,
    medins_visit,
    request,
    run_proxy,
    start_simulator,
    write_http_config,
)

XML_BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>&lol3;</soap:Body></soap:Envelope>"""
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><a>&xxe;</a></soap:Body></soap:Envelope>"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    folder = tmp_path_factory.mktemp("http-proxy")
    procs = Processes()
    echo = EchoUpstream()
    try:
        sims = {kind: start_simulator(procs, kind) for kind in ("medins", "fhir", "soap", "cdc")}
        dead = free_port()
        config, ports = write_http_config(
            folder,
            {
                "medins": {"kind": "medins", "upstream": f"http://127.0.0.1:{sims['medins']}"},
                "fhir": {"kind": "fhir", "upstream": f"http://127.0.0.1:{sims['fhir']}", "capture": "fast"},
                "soap": {"kind": "soap", "upstream": f"http://127.0.0.1:{sims['soap']}"},
                "cdc": {"kind": "cdc", "upstream": f"http://127.0.0.1:{sims['cdc']}", "capture": "fast"},
                "echo": {
                    "kind": "raw",
                    "upstream": f"http://127.0.0.1:{echo.port}",
                    "capture_body_bytes": 1000,
                    "max_body_bytes": 8_000_000,
                    "response_timeout_s": 0.5,
                    "x_forwarded_for": True,
                    "rewrite_host": True,
                },
                "echo_fast": {"kind": "raw", "upstream": f"http://127.0.0.1:{echo.port}", "capture": "fast"},
                "small": {
                    "kind": "fhir",
                    "upstream": f"http://127.0.0.1:{sims['fhir']}",
                    "max_body_bytes": 2000,
                },
                "down": {"kind": "medins", "upstream": f"http://127.0.0.1:{dead}", "connect_timeout_s": 2},
                "backup": {
                    "kind": "medins",
                    "upstream": [f"http://127.0.0.1:{dead}", f"http://127.0.0.1:{sims['medins']}"],
                },
            },
        )
        proc = run_proxy(procs, config, ports)
        yield {
            "ports": ports,
            "sims": sims,
            "store": folder / "captures.db",
            "echo": echo,
            "proc": proc,
            "folder": folder,
        }
    finally:
        procs.stop_all()
        echo.close()


def rows(stack, ready=None, **flt) -> list:
    """The captured rows matching flt. A fast channel commits in groups a moment after the reply: pass
    `ready` (rows -> bool, naming the rows the test is about) to wait for them, at most 30 s."""
    if ready is None:
        time.sleep(0.25)  # durable channels: on record before the reply; a margin all the same
    deadline = time.monotonic() + 30
    while True:
        with Store(stack["store"]) as store:
            got = list(store.query(ExchangeFilter(**flt)))
        if ready is None or ready(got) or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def test_medins_visit_keepalive_is_forwarded_and_captured_durably(stack):
    port = stack["ports"]["medins"]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    answers = medins_visit(port, conn)
    conn.close()
    assert answers[-1]["output"]["setlinfo"]["setl_id"]
    with Store(stack["store"]) as store:  # durable: on disk before the client had its answer
        got = [ex for ex in store.query(ExchangeFilter(channel=["medins"])) if ex.outcome == "ok"]
    infnos = [ex.message_type for ex in got]
    assert infnos[-7:] == ["9001", "1101", "2201", "2203", "2204", "2206", "2207"]
    last = got[-1]
    assert last.protocol == "http" and last.kind == "medins" and last.method == "POST"
    assert last.path == MEDINS_PATH and last.status == 200 and last.ack_code == "0"
    assert (
        last.meta["infno"] == "2207" and last.meta["infcode"] == 0 and last.control_id == last.meta["msgid"]
    )
    assert last.request.startswith(b"POST " + MEDINS_PATH.encode() + b" HTTP/1.1\r\n")
    assert b"\r\n\r\n{" in last.request and last.response.startswith(b"HTTP/1.1 200 OK\r\n")
    assert json.loads(last.response.partition(b"\r\n\r\n")[2])["infcode"] == 0


def test_capture_list_json_has_http_columns(stack):
    out = subprocess.run(
        [*HARNESS, "capture", "list", "--store", str(stack["store"]), "--channel", "medins", "--json"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        timeout=60,
    ).stdout
    row = json.loads(out.splitlines()[-1])
    assert {"kind", "method", "path", "status", "meta"} <= set(row)
    assert row["kind"] == "medins" and row["meta"]["infno"] and "infcode" in row["meta"]


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_fhir_create_and_read_with_curl(stack):
    base = f"http://127.0.0.1:{stack['ports']['fhir']}/fhir"
    patient = json.dumps(
        {"resourceType": "Patient", "gender": "female", "name": [{"family": "周", "given": ["兰"]}]}
    )
    out = subprocess.run(
        [
            "curl",
            "-s",
            "-i",
            "-X",
            "POST",
            f"{base}/Patient",
            "-H",
            "Content-Type: application/fhir+json",
            "--data-binary",
            patient,
        ],
        capture_output=True,
        check=True,
        timeout=20,
    ).stdout.decode()
    assert out.startswith("HTTP/1.1 201"), out
    location = next(
        line.split(":", 1)[1].strip() for line in out.splitlines() if line.lower().startswith("location:")
    )
    pid = location.split("/Patient/")[1].split("/")[0]
    read = subprocess.run(
        ["curl", "-s", "-f", f"{base}/Patient/{pid}"], capture_output=True, check=True, timeout=20
    )
    assert json.loads(read.stdout)["name"][0]["family"] == "周"

    def kinds(got: list) -> set:
        return {(ex.meta.get("interaction"), ex.status) for ex in got}

    got = rows(stack, lambda got: {("create", 201), ("read", 200)} <= kinds(got), channel=["fhir"])
    assert ("create", 201) in kinds(got) and ("read", 200) in kinds(got)


def test_fhir_invalid_resource_and_malformed_json_get_the_upstream_answer_and_proxy_serves_on(stack):
    port = stack["ports"]["fhir"]
    status, _, body = request(
        port,
        "POST",
        "/fhir/Patient",
        b'{"resourceType": "Patient", "gender": "toto"}',
        {"Content-Type": "application/fhir+json"},
    )
    assert status in (400, 422) and b"OperationOutcome" in body
    status, _, body = request(
        port, "POST", "/fhir/Patient", b'{"resourceType": "Pat', {"Content-Type": "application/json"}
    )
    assert status == 400 and b"OperationOutcome" in body
    status, _, _ = request(port, "GET", "/fhir/metadata")
    assert status == 200

    def bad(got: list) -> list:
        return [ex for ex in got if ex.status == 400 and ex.meta.get("problems")]

    def invalid_json(got: list) -> bool:
        return any("not valid JSON" in p for ex in bad(got) for p in ex.meta["problems"])

    assert invalid_json(rows(stack, invalid_json, channel=["fhir"]))


@pytest.mark.parametrize(("name", "doc"), [("bomb", XML_BOMB), ("xxe", XXE)])
def test_xml_bomb_and_external_entity_are_refused_never_expanded(stack, name, doc):
    port = stack["ports"]["soap"]
    status, _, body = request(
        port,
        "POST",
        "/services/HIPMessageServer",
        doc,
        {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": "x"},
    )
    assert status >= 400 and b"root:" not in body and b"lollollol" not in body
    status, _, _ = request(port, "GET", "/services/HIPMessageServer?wsdl")
    assert status == 200
    ex = [e for e in rows(stack, channel=["soap"]) if e.method == "POST"][-1]
    assert any("DTD" in p or "entit" in p for p in ex.meta.get("problems", [])), ex.meta
    assert b"root:" not in (ex.response or b"")


def test_oversized_body_gets_413_and_a_clear_reason_then_the_proxy_serves_on(stack):
    port = stack["ports"]["small"]
    status, headers, body = request(
        port, "POST", "/fhir/Patient", b"x" * 5000, {"Content-Type": "application/json"}
    )
    assert status == 413 and b"max_body_bytes" in body and headers.get("connection") == "close"
    status, _, _ = request(port, "GET", "/fhir/metadata")
    assert status == 200


def test_garbage_request_gets_400_saying_what_and_the_proxy_serves_on(stack):
    port = stack["ports"]["fhir"]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"THIS IS NOT HTTP\r\n\r\n")
        data = s.recv(65536)
    assert data.startswith(b"HTTP/1.1 400") and b"request line" in data
    assert request(port, "GET", "/fhir/metadata")[0] == 200

    def malformed(got: list) -> list:
        return [ex for ex in got if ex.outcome == "malformed"]

    def newest_is(request_start: bytes):
        return lambda got: bool(malformed(got)) and malformed(got)[-1].request.startswith(request_start)

    bad = malformed(rows(stack, newest_is(b"THIS IS NOT HTTP"), channel=["fhir"]))
    assert bad and bad[-1].request == b"THIS IS NOT HTTP\r\n\r\n" and bad[-1].status == 400
    # a broken chunk in a body still being read: 400 at once, captured with its head
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"POST /fhir/Patient HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab")
        s.sendall(b"cdeXX\r\n")
        data = s.recv(65536)
    assert data.startswith(b"HTTP/1.1 400") and b"CRLF" in data
    bad = malformed(rows(stack, newest_is(b"POST /fhir/Patient HTTP/1.1"), channel=["fhir"]))
    assert bad[-1].method == "POST" and bad[-1].path == "/fhir/Patient"


def test_upstream_down_is_502_never_success_and_backups_are_used(stack):
    status, _, body = request(
        stack["ports"]["down"], "POST", MEDINS_PATH, b"{}", {"Content-Type": "application/json"}
    )
    assert status == 502 and b"upstream unavailable" in body and b"refused" in body.lower()
    ex = rows(stack, channel=["down"])[-1]
    assert ex.outcome == "upstream_down" and ex.status == 502 and ex.error
    status, _, body = request(
        stack["ports"]["backup"], "POST", MEDINS_PATH, b"{}", {"Content-Type": "application/json"}
    )
    assert status == 200 and "infcode" in json.loads(body)  # the simulator's own refusal of an empty envelope


def test_silent_upstream_gives_504_and_outcome_timeout(stack):
    status, _, body = request(stack["ports"]["echo"], "GET", "/silent")
    assert status == 504 and b"response_timeout_s" in body
    assert rows(stack, channel=["echo"])[-1].outcome == "timeout"


def test_large_bodies_stream_both_ways_and_the_capture_says_it_kept_a_part(stack):
    import hashlib

    port = stack["ports"]["echo"]
    payload = bytes(range(256)) * 12_000  # 3 MB
    status, _, body = request(port, "POST", "/upload", payload, {"Content-Type": "application/octet-stream"})
    assert status == 200 and json.loads(body) == {
        "sha256": hashlib.sha256(payload).hexdigest(),
        "length": len(payload),
    }

    def chunks():
        for i in range(0, len(payload), 100_000):
            yield payload[i : i + 100_000]

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    conn.request("POST", "/chunked", body=chunks(), encode_chunked=True)
    resp = conn.getresponse()
    assert json.loads(resp.read())["sha256"] == hashlib.sha256(payload).hexdigest()
    status, _, body = request(port, "GET", "/big/2500000", conn=conn)  # same keep-alive connection
    assert status == 200 and len(body) == 2_500_000
    conn.close()
    got = rows(stack, channel=["echo"])
    up = next(ex for ex in got if ex.path == "/upload")
    assert len(up.request) < 3000 and any("truncated in the capture" in n for n in up.notes)
    big = next(ex for ex in got if ex.path == "/big/2500000")
    assert len(big.response) < 3000 and any("kept 1000 of 2500000" in n for n in big.notes)
    sent = [h for m, p, h in stack["echo"].requests if p == "/upload"][-1]
    assert sent["X-Forwarded-For"] == "127.0.0.1" and sent["Host"] == f"127.0.0.1:{stack['echo'].port}"


def test_zeep_calls_the_soap_simulator_through_the_proxy(stack):
    import zeep
    from zeep.transports import Transport

    port = stack["ports"]["soap"]
    client = zeep.Client(
        f"http://127.0.0.1:{port}/services/HIPMessageServer?wsdl", transport=Transport(timeout=20)
    )
    result = client.service.HIPMessageServer(action="PatientInfoQuery", message="<not-hl7v3/>")
    assert result is not None
    posts = [
        ex
        for ex in rows(stack, channel=["soap"])
        if ex.method == "POST" and ex.meta.get("action") == "PatientInfoQuery"
    ]
    assert posts and posts[-1].status == 200 and posts[-1].meta.get("soap_version") in ("1.1", "1.2")


def test_fhir_corpus_bundles_posted_as_transactions(stack, corpus_dir):
    files = sorted((corpus_dir / "fhir").rglob("*.json"))[:6]
    if not files:
        pytest.skip("no FHIR bundles in the corpus")
    accepted = post_bundles(stack["ports"]["fhir"], files)
    assert accepted >= len(files) // 2

    def transactions(got: list) -> list:
        return [ex for ex in got if ex.meta.get("interaction") == "transaction"]

    posted = sum(json.loads(f.read_text(encoding="utf-8")).get("resourceType") == "Bundle" for f in files)
    tx = transactions(rows(stack, lambda got: len(transactions(got)) >= posted, channel=["fhir"]))
    assert tx and all(ex.meta.get("bundle_type") for ex in tx if ex.status == 200)


@pytest.mark.slow
def test_all_fhir_corpus_bundles_posted_as_transactions(stack, corpus_dir):
    files = sorted((corpus_dir / "fhir").rglob("*.json"))
    if not files:
        pytest.skip("no FHIR bundles in the corpus")
    assert post_bundles(stack["ports"]["fhir"], files) >= 0.9 * len(files)


def post_bundles(port: int, files: list) -> int:
    """Post each Bundle as a transaction; returns how many the simulator accepted (the others must
    come back as an OperationOutcome that says why, relayed unchanged)."""
    accepted = 0
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for path in files:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("resourceType") != "Bundle":
            continue
        doc["type"] = "transaction"
        for entry in doc.get("entry") or []:
            res = entry.get("resource") or {}
            entry.setdefault("request", {"method": "POST", "url": res.get("resourceType", "Basic")})
        headers = {"Content-Type": "application/fhir+json"}
        status, _, body = request(port, "POST", "/fhir", json.dumps(doc).encode(), headers, conn)
        answer = json.loads(body)
        if status == 200:
            assert answer["resourceType"] == "Bundle" and answer["type"] == "transaction-response", path.name
            accepted += 1
        else:
            assert status in (400, 422) and answer["resourceType"] == "OperationOutcome", (
                path.name,
                body[:300],
            )
            assert answer["issue"][0].get("diagnostics"), path.name
    conn.close()
    return accepted


def test_tls_on_both_sides(processes, tmp_path):
    import ssl

    from tests.tls_material import make_self_signed

    cert, key = make_self_signed(tmp_path)
    fhir = start_simulator(processes, "fhir")
    back_port = free_port()
    config, ports = write_http_config(
        tmp_path,
        {
            "front": {
                "kind": "fhir",
                "tls": {"cert": str(cert), "key": str(key)},
                "upstream": f"https://localhost:{back_port}",
                "upstream_tls": {"ca": str(cert)},
            },
            "back": {
                "kind": "fhir",
                "listen": f"127.0.0.1:{back_port}",
                "tls": {"cert": str(cert), "key": str(key)},
                "upstream": f"http://127.0.0.1:{fhir}",
            },
        },
    )
    run_proxy(processes, config, ports)
    context = ssl.create_default_context(cafile=str(cert))
    conn = http.client.HTTPSConnection("localhost", ports["front"], context=context, timeout=20)
    conn.request("GET", "/fhir/metadata")
    resp = conn.getresponse()
    assert resp.status == 200 and b"CapabilityStatement" in resp.read()
    conn.close()
    with Store(tmp_path / "captures.db") as store:
        got = {(ex.channel, ex.status) for ex in store.query(ExchangeFilter())}
    assert got == {("front", 200), ("back", 200)}
    # a client that does not trust the certificate gets no answer at all
    with pytest.raises(ssl.SSLError):
        http.client.HTTPSConnection(
            "localhost", ports["front"], context=ssl.create_default_context(), timeout=10
        ).request("GET", "/fhir/metadata")


def test_heads_pass_byte_for_byte_and_hop_by_hop_headers_stop_at_the_proxy(stack):
    port = stack["ports"]["fhir"]
    raw = (
        b"GET /fhir/metadata HTTP/1.1\r\nHost: hc.local\r\nx-OdD-CaSe:  kept  \r\n"
        b"Connection: keep-alive, X-Hop\r\n"
        b"X-Hop: gone\r\nKeep-Alive: timeout=5\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(raw)
        data = b""
        while b"\r\n\r\n" not in data:
            data += s.recv(65536)
    assert data.startswith(b"HTTP/1.1 200")
    ex = rows(stack, lambda got: bool(got) and got[-1].request.startswith(raw[:-2]), channel=["fhir"])[-1]
    assert ex.request.startswith(raw[:-2])  # captured exactly as received


def test_cdc_report_card_result_is_captured(stack):
    card = (ROOT / "specs" / "cdc" / "examples" / "emr_inf_report.json").read_bytes()
    status, _, body = request(
        stack["ports"]["cdc"], "POST", "/cdc/emr_inf_report", card, {"Content-Type": "application/json"}
    )
    assert status == 200 and json.loads(body)["result"] is True
    status, _, body = request(
        stack["ports"]["cdc"],
        "POST",
        "/cdc/emr_inf_report",
        b'{"disease_code": "x"}',
        {"Content-Type": "application/json"},
    )
    assert json.loads(body)["result"] is False
    got = rows(stack, lambda got: bool(got) and b'"disease_code": "x"' in got[-1].request, channel=["cdc"])
    assert [(ex.message_type, ex.ack_code, ex.outcome) for ex in got[-2:]] == [
        ("emr_inf_report", "true", "ok"),
        ("emr_inf_report", "false", "nak"),
    ]


def test_chunked_response_is_relayed_chunked_and_captured_decoded(stack):
    from harness.http_wire import read_message

    port = stack["ports"]["echo"]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET /chunked/50 HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while not data.endswith(b"0\r\n\r\n"):
            more = s.recv(65536)
            assert more
            data += more
    assert b"Transfer-Encoding: chunked" in data
    msg = read_message(data, request=False)
    assert msg.complete and msg.body == b"".join(f"chunk {i};".encode() for i in range(50))
    ex = next(e for e in reversed(rows(stack, channel=["echo"])) if e.path == "/chunked/50")
    assert read_message(ex.response, request=False).body == msg.body


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_curl_upload_with_expect_100_continue(stack, tmp_path):
    import hashlib

    data = bytes(range(256)) * 8192  # 2 MB: curl sends Expect: 100-continue and waits for it
    path = tmp_path / "upload.bin"
    path.write_bytes(data)
    out = subprocess.run(
        [
            "curl",
            "-s",
            "-H",
            "Expect: 100-continue",
            "--data-binary",
            f"@{path}",
            f"http://127.0.0.1:{stack['ports']['echo']}/upload-curl",
        ],
        capture_output=True,
        timeout=30,
        check=True,
    ).stdout
    assert json.loads(out)["sha256"] == hashlib.sha256(data).hexdigest()


def test_upstream_dying_mid_response_is_not_passed_off_as_complete(stack):
    # durable capture holds the response, so the client gets a 502 saying why instead of a cut body
    status, _, body = request(stack["ports"]["echo"], "GET", "/die")
    assert status == 502 and b"before a complete response" in body
    ex = next(e for e in reversed(rows(stack, channel=["echo"])) if e.path == "/die")
    assert ex.outcome == "upstream_down" and "before a complete response" in ex.error
    # streamed (fast capture, no rules): the head went out, so the client sees the body cut short
    conn = http.client.HTTPConnection("127.0.0.1", stack["ports"]["echo_fast"], timeout=10)
    conn.request("GET", "/die")
    resp = conn.getresponse()
    with pytest.raises(http.client.IncompleteRead):
        resp.read()
    conn.close()
    got = rows(stack, lambda got: any(e.path == "/die" for e in got), channel=["echo_fast"])
    ex = next(e for e in reversed(got) if e.path == "/die")
    assert ex.outcome == "upstream_down" and "mid-response" in ex.error
    assert request(stack["ports"]["echo"], "GET", "/big/10")[0] == 200


def test_durable_capture_survives_a_hard_kill(processes, tmp_path):
    import os
    import signal

    fhir = start_simulator(processes, "fhir")
    config, ports = write_http_config(
        tmp_path, {"fhir": {"kind": "fhir", "upstream": f"http://127.0.0.1:{fhir}"}}
    )
    proc = run_proxy(processes, config, ports)
    conn = http.client.HTTPConnection("127.0.0.1", ports["fhir"], timeout=10)
    for _ in range(5):
        conn.request("GET", "/fhir/metadata")
        assert conn.getresponse().read()
    os.killpg(proc.pid, signal.SIGKILL)  # no flush, no shutdown: what the clients got must be on disk
    proc.wait()
    with Store(tmp_path / "captures.db") as store:
        assert len(list(store.query(ExchangeFilter(channel=["fhir"])))) == 5


@pytest.mark.parametrize("channel", ["medins", "fhir", "cdc"])
@pytest.mark.parametrize(
    "body",
    [
        b'{"infno": "2207", "msgid": "H53\\ud800", "resourceType": "\\udfff", "table": "\\ud800"}',
        b'{"infno": "2207", "input": ' + b"[" * 1200 + b"]" * 1200 + b"}",
        b'{"infno": "2207", "infcode": ' + b"9" * 4400 + b"}",
    ],
    ids=["lone-surrogates", "nested-1200-deep", "4400-digit-integer"],
)
def test_bodies_the_codecs_cannot_read_are_still_forwarded_answered_and_captured_as_sent(
    stack, channel, body
):
    path = {"medins": MEDINS_PATH, "fhir": "/fhir/Patient", "cdc": "/cdc/report"}[channel]
    status, _, answer = request(
        stack["ports"][channel], "POST", path, body, {"Content-Type": "application/json"}
    )
    assert status > 0 and answer  # the upstream's own answer, whatever it thinks of the body

    def mine(got: list) -> list:
        return [ex for ex in got if ex.request.endswith(body)]

    got = mine(rows(stack, lambda got: bool(mine(got)), channel=[channel]))
    assert got, "no capture row for the request"
    ex = got[-1]
    assert ex.request.endswith(body) and ex.response.endswith(answer)  # bytes as they crossed the wire
    assert ex.meta.get("problems")
    if b"\\ud800" in body and channel == "medins":
        assert ex.control_id == "H53\ufffd"
