"""Every HTTP fault action seen from a client, through a real proxy process in front of the simulators,
with rules added at run time through the admin API (and `harness fault add`)."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import time
import urllib.request

import pytest

from harness.store import ExchangeFilter, Store
from tests.ports import free_port
from tests.processes import HARNESS, Processes
from tests.proxy.faults.http.views import SOAP12
from tests.proxy.http_setup import (
    MEDINS_PATH,
    medins_visit,
    request,
    run_proxy,
    start_simulator,
    write_http_config,
)

TOKEN = "http-fault-token"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    folder = tmp_path_factory.mktemp("http-faults")
    procs = Processes()
    try:
        sims = {kind: start_simulator(procs, kind) for kind in ("medins", "fhir", "soap")}
        admin = free_port()
        config, ports = write_http_config(
            folder,
            {
                "medins": {
                    "kind": "medins",
                    "upstream": f"http://127.0.0.1:{sims['medins']}",
                    "capture": "fast",
                },
                "fhir": {"kind": "fhir", "upstream": f"http://127.0.0.1:{sims['fhir']}", "capture": "fast"},
                "soap": {"kind": "soap", "upstream": f"http://127.0.0.1:{sims['soap']}", "capture": "fast"},
            },
            admin={"listen": f"127.0.0.1:{admin}"},
        )
        run_proxy(procs, config, ports, env={"HARNESS_ADMIN_TOKEN": TOKEN})
        yield {"ports": ports, "admin": f"http://127.0.0.1:{admin}", "store": folder / "captures.db"}
    finally:
        procs.stop_all()


def admin_call(stack, method: str, path: str, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        stack["admin"] + path,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read() or b"null")


@pytest.fixture
def rules(stack):
    added = []

    def add(channel: str, rule: dict) -> None:
        admin_call(stack, "POST", f"/channels/{channel}/faults", rule)
        added.append(channel)

    yield add
    for channel in set(added):
        admin_call(stack, "POST", f"/channels/{channel}/faults/reset")


def newest_id(stack) -> int:
    """The id of the newest captured exchange (0 when none): a mark taken before a request."""
    with Store(stack["store"]) as store:
        got = list(store.query(ExchangeFilter(order="-id", limit=1), bodies=False))
    return got[0].id if got else 0


def last(stack, channel: str, after: int, ready=None):
    """The channel's newest exchange once it is newer than `after` (and `ready(ex)` holds): these
    channels capture fast, committed in groups a moment after the reply. Waits at most 30 s."""
    deadline = time.monotonic() + 30
    while True:
        with Store(stack["store"]) as store:
            got = list(store.query(ExchangeFilter(channel=[channel], order="-id", limit=1)))
        if got and got[0].id > after and (ready is None or ready(got[0])):
            return got[0]
        assert time.monotonic() < deadline, f"no new {channel} exchange on record after #{after}"
        time.sleep(0.05)


def post_medins(stack, doc: dict, conn=None):
    return request(
        stack["ports"]["medins"],
        "POST",
        MEDINS_PATH,
        json.dumps(doc).encode(),
        {"Content-Type": "application/json"},
        conn,
    )


def test_fault_add_cli_works_for_http_channels_and_medins_error_hits_2207(stack, rules):
    out = subprocess.run(
        [
            *HARNESS,
            "fault",
            "add",
            "medins",
            "--admin",
            stack["admin"],
            "--rule",
            json.dumps(
                {
                    "match": {"meta": {"infno": "2207"}},
                    "action": {"type": "medins_error", "err_msg": "结算失败"},
                }
            ),
        ],
        capture_output=True,
        text=True,
        env={"HARNESS_ADMIN_TOKEN": TOKEN, "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    rules("medins", {"match": {"method": "GET"}, "action": {"type": "reset"}})  # registers cleanup
    before = newest_id(stack)
    with pytest.raises(AssertionError, match="2207"):
        medins_visit(stack["ports"]["medins"])
    ex = last(stack, "medins", before, lambda ex: ex.meta.get("infno") == "2207")
    assert ex.outcome == "fault" and ex.fault["action"] == "medins_error" and ex.meta["infno"] == "2207"
    assert ex.ack_code == "-1" and json.loads(ex.response.partition(b"\r\n\r\n")[2])["err_msg"] == "结算失败"
    bad = subprocess.run(
        [*HARNESS, "fault", "add", "medins", "--admin", stack["admin"], "--type", "nak"],
        capture_output=True,
        text=True,
        env={"HARNESS_ADMIN_TOKEN": TOKEN, "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert bad.returncode != 0 and "unknown action type 'nak' for http" in bad.stderr


def test_status_503_and_429_with_retry_after(stack, rules):
    rules(
        "fhir",
        {
            "match": {"path": "/fhir/metadata"},
            "action": {"type": "status", "code": 429, "retry_after": 3},
            "limit": 1,
        },
    )
    status, headers, body = request(stack["ports"]["fhir"], "GET", "/fhir/metadata")
    assert status == 429 and headers["retry-after"] == "3" and b"fault rule" in body
    assert request(stack["ports"]["fhir"], "GET", "/fhir/metadata")[0] == 200  # limit 1
    rules(
        "fhir",
        {
            "match": {"direction": "response", "status": 200, "method": "GET"},
            "action": {"type": "status", "code": 503},
        },
    )
    before = newest_id(stack)
    assert request(stack["ports"]["fhir"], "GET", "/fhir/metadata")[0] == 503
    ex = last(stack, "fhir", before)
    assert ex.outcome == "fault" and ex.status == 503 and ex.meta["upstream_status"] == 200


def test_delay_is_observed(stack, rules):
    rules("fhir", {"action": {"type": "delay", "ms": 300}})
    before = newest_id(stack)
    started = time.monotonic()
    assert request(stack["ports"]["fhir"], "GET", "/fhir/metadata")[0] == 200
    assert time.monotonic() - started >= 0.3
    ex = last(stack, "fhir", before)
    assert ex.outcome == "ok" and ex.fault["action"] == "delay"


def test_reset_gives_the_client_a_connection_reset(stack, rules):
    rules("fhir", {"action": {"type": "reset"}})
    before = newest_id(stack)
    with pytest.raises((ConnectionResetError, http.client.RemoteDisconnected, ConnectionAbortedError)):
        request(stack["ports"]["fhir"], "GET", "/fhir/metadata")
    assert last(stack, "fhir", before).outcome == "fault"


def test_truncate_cuts_the_body_the_client_sees_incomplete_read(stack, rules):
    rules("fhir", {"action": {"type": "truncate", "keep_bytes": 100}})
    with pytest.raises(http.client.IncompleteRead) as info:
        request(stack["ports"]["fhir"], "GET", "/fhir/metadata")
    assert len(info.value.partial) == 100


def test_malformed_body_does_not_parse(stack, rules):
    rules("fhir", {"action": {"type": "malformed"}})
    status, _, body = request(stack["ports"]["fhir"], "GET", "/fhir/metadata")
    assert status == 200
    with pytest.raises(ValueError):
        json.loads(body)


def test_slow_body_takes_its_time(stack, rules):
    rules("fhir", {"match": {"path": "/fhir/Patient/*"}, "action": {"type": "slow_body", "bps": 1000}})
    started = time.monotonic()
    status, _, body = request(stack["ports"]["fhir"], "GET", "/fhir/Patient/none")
    assert status == 404 and b"OperationOutcome" in body
    assert time.monotonic() - started >= (len(body) / 1000) * 0.5


def test_soap_fault_in_soap12_matched_by_xpath(stack, rules):
    rules(
        "soap",
        {
            "match": {"xpath": {"//*[local-name()='action']": "PatientInfoRegister"}},
            "action": {"type": "soap_fault", "code": "Client", "text": "registry closed"},
        },
    )
    before = newest_id(stack)
    status, headers, body = request(
        stack["ports"]["soap"],
        "POST",
        "/services/HIPMessageServer",
        SOAP12,
        {"Content-Type": "application/soap+xml; charset=utf-8"},
    )
    assert status == 500 and "application/soap+xml" in headers["content-type"]
    assert b"soap:Sender" in body and b"registry closed" in body
    ex = last(stack, "soap", before)
    assert ex.ack_code == "soap:Sender" and ex.outcome == "fault"


def test_proxy_serves_on_after_every_fault(stack):
    assert request(stack["ports"]["fhir"], "GET", "/fhir/metadata")[0] == 200
    with socket.create_connection(("127.0.0.1", stack["ports"]["medins"]), timeout=5):
        pass
