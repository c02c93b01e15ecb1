import json
import shutil
import subprocess
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.simulators.cdc import CdcFrontEnd
from harness.simulators.wire import HttpRequest
from tests.childproc import start_listening

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "cdc"
REPORT = json.loads((FIXTURES / "emr_inf_report.json").read_text(encoding="utf-8"))


@pytest.fixture
def core():
    return CdcFrontEnd(clock=lambda: datetime(2026, 1, 6, 8, 0))


def post(core, table, value):
    body = value if isinstance(value, bytes) else json.dumps(value, ensure_ascii=False).encode()
    resp = core.handle(HttpRequest("POST", f"/cdc/{table}", {"content-type": "application/json"}, body))
    return resp.status, json.loads(resp.body)


def reasons(core, table="emr_inf_report", **changes):
    row = dict(REPORT, **changes)
    for key in [k for k, v in changes.items() if v is None]:
        del row[key]
    status, answer = post(core, table, row)
    assert status == 200
    return answer.get("reasons", [])


def test_fixtures_are_accepted(core):
    for table in ("emr_inf_report", "emr_patient_info"):
        value = json.loads((FIXTURES / f"{table}.json").read_text(encoding="utf-8"))
        assert post(core, table, value) == (200, {"result": True})
    assert core.accepted == {"emr_inf_report": 1, "emr_patient_info": 1}


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"disease_code": "0300"}, ["disease_code: 0300 has subtypes", "0302 乙型肝炎"]),
        ({"disease_code": "9999"}, ["disease_code: '9999' is not a notifiable disease code"]),
        ({"diagnose_state_code": "5"}, ["diagnose_state_code: '5' is not a case_classification code"]),
        ({"case_type_code": "7"}, ["case_type_code"]),
        ({"id_card": "530102198503071231"}, ["id_card", "check digit"]),
        ({"gender_code": "2"}, ["gender_code: 2 contradicts id_card"]),
        ({"birth_date": "1985-03-08"}, ["birth_date: 1985-03-08 contradicts id_card"]),
        ({"current_addr_code": "5301020"}, ["current_addr_code: '5301020' must be a 9-digit zone code"]),
        (
            {"report_zone_code": "990102000"},
            ["report_zone_code: 990102000 does not start with a province code"],
        ),
        ({"report_org_code": "H5301"}, ["report_org_code"]),
        ({"onset_date": "2026/01/02"}, ["onset_date: '2026/01/02' is not a date"]),
        (
            {"onset_date": "2026-01-06", "diagnose_time": "2026-01-05"},
            ["diagnose_time: 2026-01-05 is before onset_date"],
        ),
        ({"report_date": "2026-02-01"}, ["report_date: 2026-02-01 is in the future"]),
        ({"disease_code": None, "fill_doctor": ""}, ["disease_code: missing", "fill_doctor: missing"]),
    ],
)
def test_each_problem_is_named(core, changes, words):
    found = reasons(core, **changes)
    text = " | ".join(found)
    for word in words:
        assert word in text, found


def test_every_problem_in_a_row_and_rows_in_a_list_are_reported(core):
    found = reasons(core, disease_code="0300", diagnose_state_code="9", gender_code="2")
    assert len(found) == 3
    status, answer = post(core, "emr_inf_report", [REPORT, dict(REPORT, disease_code="1"), "x"])
    assert answer["result"] is False
    assert answer["reasons"] == [
        "[1].disease_code: '1' is not a notifiable disease code",
        "[2]: a row must be a JSON object, got str",
    ]
    assert post(core, "emr_inf_report", [REPORT, REPORT]) == (200, {"result": True})
    assert core.accepted["emr_inf_report"] == 2


def test_other_tables(core):
    assert reasons(core, "emr_activity_info") == ["activity_time: missing", "org_code: missing"]
    row = {
        "patient_id": "P1",
        "serial_number": "S1",
        "discharge_time": "2026-01-05 12:00:00",
        "org_code": "H53010201",
    }
    assert post(core, "emr_discharge_info", row) == (200, {"result": True})
    order = {
        "patient_id": "P1",
        "serial_number": "S1",
        "order_id": "O1",
        "order_item_code": "C1",
        "order_item_name": "乙肝五项",
        "order_time": "yesterday",
    }
    assert "order_time: 'yesterday' is not a date" in post(core, "emr_order_item", order)[1]["reasons"][0]


def test_bad_requests(core):
    assert post(core, "emr_inf_report", b'{"patient_id": ')[0] == 400
    status, answer = post(core, "emr_inf_report", b'{"patient_id": ')
    assert answer == {
        "result": False,
        "reasons": ["body is not valid JSON: Expecting value at line 1 column 16"],
    }
    assert post(core, "emr_inf_report", b"\xff")[0] == 400
    assert post(core, "emr_inf_report", b"42")[1]["reasons"][0].startswith("body must be a JSON object")
    assert post(core, "emr_inf_report", [])[1]["reasons"] == ["the list of rows is empty"]
    status, answer = post(core, "nope", REPORT)
    assert status == 404 and "unknown table 'nope'" in answer["reasons"][0]
    assert core.handle(HttpRequest("GET", "/cdc/emr_inf_report")).status == 405
    assert core.handle(HttpRequest("POST", "/other")).status == 404
    big = core.too_large(HttpRequest("POST", "/cdc/emr_inf_report"), 5)
    assert big.status == 413 and json.loads(big.body)["result"] is False
    assert post(core, "emr_inf_report", REPORT) == (200, {"result": True})


# ---------------------------------------------------------------- real sockets
@pytest.fixture
def server(processes):
    return start_listening(processes, "mock", "cdc", "--listen", "127.0.0.1:0", "--max-body", "50000")


def test_urllib_and_curl_against_the_server(server):
    _, port = server
    url = f"http://127.0.0.1:{port}/cdc/emr_inf_report"

    def send(body: bytes):
        req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    # The fixture was written for 2026-01-05, which the real clock has passed.
    assert send((FIXTURES / "emr_inf_report.json").read_bytes()) == (200, {"result": True})
    status, answer = send(json.dumps(dict(REPORT, disease_code="0800")).encode())
    assert status == 200 and answer["result"] is False and "0801 一期梅毒" in answer["reasons"][0]
    assert send(b"{broken")[0] == 400
    status, answer = send(b'{"x": "' + b"a" * 100_000 + b'"}')
    assert status == 413 and "50000-byte limit" in answer["reasons"][0]
    if shutil.which("curl"):
        done = subprocess.run(
            [
                "curl",
                "-sS",
                "-H",
                "Content-Type: application/json",
                "--data-binary",
                f"@{FIXTURES / 'emr_patient_info.json'}",
                url.replace("emr_inf_report", "emr_patient_info"),
            ],
            capture_output=True,
            text=True,
            timeout=20,
        )
        assert json.loads(done.stdout) == {"result": True}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    key=st.sampled_from(sorted(REPORT)),
    value=st.none()
    | st.integers()
    | st.floats()
    | st.text(max_size=30)
    | st.lists(st.integers(), max_size=3),
)
def test_any_field_value_gets_a_result_never_a_crash(core, key, value):
    status, answer = post(core, "emr_inf_report", dict(REPORT, **{key: value}))
    assert status == 200 and answer["result"] in (True, False)
    if answer["result"] is False:
        assert answer["reasons"] and all(isinstance(r, str) and r for r in answer["reasons"])
