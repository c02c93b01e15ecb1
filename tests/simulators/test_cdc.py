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

from harness.simulators.cdc import API_PREFIX, CdcFrontEnd
from harness.simulators.wire import HttpRequest
from tests.childproc import start_listening

FIXTURES = Path(__file__).resolve().parents[2] / "specs" / "cdc" / "examples"
REPORT = json.loads((FIXTURES / "emr_inf_report.json").read_text(encoding="utf-8"))
PATIENT = json.loads((FIXTURES / "emr_patient_info.json").read_text(encoding="utf-8"))
TABLES = list(CdcFrontEnd().tables)  # spec order: a table's references come before it


def row(table: str) -> dict:
    return json.loads((FIXTURES / f"{table}.json").read_text(encoding="utf-8"))


@pytest.fixture
def core():
    return CdcFrontEnd(clock=lambda: datetime(2026, 1, 6, 18, 0))


def send(core, table, value, method="POST", legacy=False):
    body = value if isinstance(value, bytes) else json.dumps(value, ensure_ascii=False).encode()
    path = f"/cdc/{table}" if legacy else API_PREFIX + core.tables[table]["api"]
    resp = core.handle(HttpRequest(method, path, {"content-type": "application/json"}, body))
    return resp.status, json.loads(resp.body)


def post(core, table, value):
    return send(core, table, value)


def loaded(core, upto: str | None = None) -> CdcFrontEnd:
    """The fixture rows of every table before `upto` (all when None), posted in order."""
    for table in TABLES:
        if table == upto:
            break
        assert send(core, table, row(table))[1]["result"] is True, table
    return core


def reasons(core, table="emr_inf_report", **changes):
    loaded(core, table)
    value = dict(row(table), **changes)
    for key in [k for k, v in changes.items() if v is None]:
        del value[key]
    status, answer = post(core, table, value)
    assert status == 200
    return answer.get("reasons", [])


def test_twenty_tables_each_fixture_accepted_with_the_front_end_answer(core):
    assert len(TABLES) == 20
    for table in TABLES:
        status, answer = send(core, table, row(table))
        key = row(table)[core.tables[table]["key"]]
        assert (status, answer) == (
            200,
            {"result": True, "desc": "成功", "id": key, "errorCode": None, "errorName": None},
        ), table
    assert sum(core.accepted.values()) == 20


@pytest.mark.parametrize("table", TABLES)
def test_missing_required_field_is_refused_naming_it(core, table):
    required = [c for c, f in core.tables[table]["fields"].items() if f.get("required")]
    found = reasons(core, table, **{required[-1]: None})
    assert f"{required[-1]}: missing" in found


CODED = [
    (t, c, f["code"]) for t in TABLES for c, f in CdcFrontEnd().tables[t]["fields"].items() if "code" in f
]


@pytest.mark.parametrize(("table", "column", "codeset"), [c for c in CODED if c[1] in row(c[0])])
def test_code_outside_its_set_is_refused(core, table, column, codeset):
    found = reasons(core, table, **{column: "ZZ"})
    assert any(f"{column}: 'ZZ' is not a {codeset} code" in r for r in found), found


@pytest.mark.parametrize("code", ["1", "2", "3", "4", "5", "6", "7", "8", "9"])
def test_activity_type_is_the_front_ends_nine_codes(core, code):
    assert reasons(core, "emr_activity_info", activity_type_code=code) == []


def test_corrected_code_sets(core):
    assert core.codes["activity_type"]["3"] == "留观入观" and core.codes["activity_type"]["9"] == "出院"
    assert "10" not in core.codes["activity_type"]
    assert set(core.codes["case_classification"]) == {"1", "3", "4", "5", "6"}
    assert set(core.codes["case_type"]) == {"1", "2", "3"}
    assert core.codes["nation"]["01"] == "汉族 Han HA" and core.codes["nation"]["97"] == "其他"


@pytest.mark.parametrize(
    ("table", "invented", "real"),
    [
        ("emr_patient_info", "occupation_code", "nultitude_type_code"),
        ("emr_patient_info", "patient_belong_code", None),
        ("emr_inf_report", "report_card_type_code", None),
        ("emr_discharge_info", "discharge_time", "discharge_date"),
        ("emr_order_item", "order_item_code", "drug_code"),
        ("emr_order_item", "patient_id", None),
    ],
)
def test_invented_field_names_are_refused_and_the_real_ones_accepted(core, table, invented, real):
    found = reasons(core, table, **{invented: "16"})
    assert f"{invented}: not a column of {table} (unknown field)" in found
    if real:
        assert real in core.tables[table]["fields"]


def test_rows_in_the_hubs_camel_case_json_are_accepted(core):
    camel = {
        "id": "P0009",
        "patientName": "李云",
        "idCardTypeCode": "01",
        "idCard": PATIENT["id_card"],
        "genderCode": "1",
        "birthDate": "1985-03-07",
        "nultitudeTypeCode": "3",
        "orgCode": "H53010201",
        "operatorId": "D1",
        "operationTime": "2026-01-05 10:00:00",
    }
    assert send(core, "emr_patient_info", camel)[1]["result"] is True
    bad = dict(camel, genderCode="2")
    found = send(core, "emr_patient_info", bad)[1]["reasons"]
    assert found == ["genderCode: 2 contradicts id_card 53010219850307123X (gender 1)"]


def test_references_and_deletes_follow_the_front_ends_foreign_keys(core):
    found = reasons(core, "emr_activity_info", patient_id="P404")
    assert "patient_id: no emr_patient_info row P404 (send it first)" in found
    loaded(core)
    found = send(core, "emr_order_item", dict(row("emr_order_item"), id="OI9", order_id="O404"))[1]["reasons"]
    assert "order_id: no emr_order row O404 (send it first)" in found
    status, answer = send(core, "emr_patient_info", {"id": "P0001234"}, method="DELETE")
    assert answer["result"] is False and "still named by emr_activity_info" in answer["reasons"][0]
    assert send(core, "emr_order_item", {"id": "OI0001"}, method="DELETE")[1]["result"] is True
    assert send(core, "emr_order", {"id": "O0001"}, method="DELETE")[1] == {
        "result": True,
        "desc": "成功",
        "id": "O0001",
        "errorCode": None,
        "errorName": None,
    }
    assert send(core, "emr_order", {"id": "O0001"}, method="DELETE")[1]["reasons"] == [
        "id: no emr_order row O0001"
    ]
    # A patient and its report in one list: the patient row counts for the report in the same request.
    fresh = CdcFrontEnd(clock=lambda: datetime(2026, 1, 6, 18, 0))
    status, answer = send(fresh, "emr_patient_info", [PATIENT])
    assert answer["result"] is True


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"disease_code": "0300"}, ["disease_code: 0300 has subtypes", "0302 乙型肝炎"]),
        ({"disease_code": "9999"}, ["disease_code: '9999' is not a notifiable disease code"]),
        ({"diagnose_state_code": "2"}, ["diagnose_state_code: '2' is not a case_classification code"]),
        ({"case_type_code": "0"}, ["case_type_code: '0' is not a case_type code"]),
        ({"id_card": "530102198503071231"}, ["id_card", "check digit"]),
        ({"gender_code": "2"}, ["gender_code: 2 contradicts id_card"]),
        ({"birth_date": "1985-03-08"}, ["birth_date: 1985-03-08 contradicts id_card"]),
        ({"current_addr_code": "5301020"}, ["current_addr_code: '5301020' must be a 9-digit zone code"]),
        ({"report_zone_code": "53010"}, ["report_zone_code: '53010' must be a 6 or 9-digit zone code"]),
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


def test_a_six_digit_report_zone_and_icd10_disease_codes_are_accepted(core):
    # A real mapper sends a county code (6 digits) and ICD-10 disease codes (M: the sources disagree).
    assert reasons(core, report_zone_code="522632") == []
    loaded(core, "emr_inf_report")
    assert post(core, "emr_inf_report", dict(REPORT, id="R2", disease_code="U07.1"))[1]["result"] is True
    assert post(core, "emr_inf_report", dict(REPORT, id="R3", disease_code="B04"))[1]["result"] is True


def test_every_problem_in_a_row_and_rows_in_a_list_are_reported(core):
    found = reasons(core, disease_code="0300", diagnose_state_code="9", gender_code="2")
    assert len(found) == 3
    status, answer = post(core, "emr_inf_report", [REPORT, dict(REPORT, id="R9", disease_code="1"), "x"])
    assert answer["result"] is False and answer["errorCode"] == "400"
    assert answer["reasons"] == [
        "[1].disease_code: '1' is not a notifiable disease code (NNDRS) nor an ICD-10 code",
        "[2]: a row must be a JSON object, got str",
    ]
    assert post(core, "emr_inf_report", [REPORT, dict(REPORT, id="R2")]) == (
        200,
        {"result": True, "desc": "成功", "id": ["R0001", "R2"], "errorCode": None, "errorName": None},
    )


def test_bad_requests(core):
    status, answer = post(core, "emr_inf_report", b'{"patient_id": ')
    assert status == 400 and answer["reasons"] == [
        "body is not valid JSON: Expecting value at line 1 column 16"
    ]
    assert post(core, "emr_inf_report", b"\xff")[0] == 400
    assert post(core, "emr_inf_report", b"42")[1]["reasons"][0].startswith("body must be a JSON object")
    assert post(core, "emr_inf_report", [])[1]["reasons"] == ["the list of rows is empty"]
    resp = core.handle(HttpRequest("POST", API_PREFIX + "nope", {}, b"{}"))
    assert resp.status == 404 and "unknown table 'nope'" in json.loads(resp.body)["reasons"][0]
    assert core.handle(HttpRequest("GET", API_PREFIX + "emrInfReport")).status == 405
    assert core.handle(HttpRequest("POST", "/other")).status == 404
    big = core.too_large(HttpRequest("POST", API_PREFIX + "emrInfReport"), 5)
    assert big.status == 413 and json.loads(big.body)["result"] is False
    loaded(core, "emr_inf_report")
    assert send(core, "emr_inf_report", REPORT, legacy=True)[1]["result"] is True


def test_legacy_path_checks_each_row_alone(core):
    """The earlier /cdc/{table} path never had references: a lone report card still goes in there."""
    lone = dict(REPORT, patient_id="P-NOT-SENT")
    assert send(core, "emr_inf_report", lone, legacy=True)[1]["result"] is True
    assert send(core, "emr_inf_report", lone)[1]["reasons"] == [
        "patient_id: no emr_patient_info row P-NOT-SENT (send it first)"
    ]
    broken = dict(lone, disease_code="x")
    assert send(core, "emr_inf_report", broken, legacy=True)[1]["result"] is False


# ---------------------------------------------------------------- real sockets
@pytest.fixture
def server(processes):
    return start_listening(processes, "mock", "cdc", "--listen", "127.0.0.1:0", "--max-body", "50000")


def test_urllib_and_curl_against_the_server(server):
    _, port = server
    base = f"http://127.0.0.1:{port}{API_PREFIX}"

    def send_http(api: str, body: bytes, method: str = "POST"):
        req = urllib.request.Request(base + api, body, {"Content-Type": "application/json"}, method=method)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    # The fixtures were written for 2026-01-05, which the real clock has passed.
    assert send_http("emrPatientInfo", (FIXTURES / "emr_patient_info.json").read_bytes())[1]["result"] is True
    assert send_http("emrInfReport", (FIXTURES / "emr_inf_report.json").read_bytes())[1]["result"] is True
    status, answer = send_http(
        "emrInfReport", json.dumps(dict(REPORT, id="R5", disease_code="0800")).encode()
    )
    assert status == 200 and answer["result"] is False and "0801 一期梅毒" in answer["reasons"][0]
    assert send_http("emrInfReport", b"{broken")[0] == 400
    status, answer = send_http("emrInfReport", b'{"x": "' + b"a" * 100_000 + b'"}')
    assert status == 413 and "50000-byte limit" in answer["reasons"][0]
    assert send_http("emrInfReport", b'{"id": "R0001"}', method="DELETE")[1]["result"] is True
    if shutil.which("curl"):
        done = subprocess.run(
            [
                "curl",
                "-sS",
                "-X",
                "DELETE",
                "-H",
                "Content-Type: application/json",
                "--data-binary",
                '{"id": "P0001234"}',
                base + "emrPatientInfo",
            ],
            capture_output=True,
            text=True,
            timeout=20,
        )
        assert json.loads(done.stdout)["result"] is True


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
