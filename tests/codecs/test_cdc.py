import json

from harness import codecs

CDC = codecs.get("cdc")


def test_table_from_path_and_fields():
    body = json.dumps({"patient_id": "P1", "serial_number": "S9", "disease_code": "0301"}).encode()
    meta = CDC.request_meta("POST", "/cdc/emr_inf_report", {}, body)
    assert meta == {
        "table": "emr_inf_report",
        "disease_code": "0301",
        "serial_number": "S9",
        "patient_id": "P1",
    }


def test_result_and_reasons():
    meta = CDC.response_meta({}, 200, {}, b'{"result": false, "reasons": ["disease_code 9999 unknown"]}')
    assert meta == {"result": False, "reasons": ["disease_code 9999 unknown"]}


def test_missing_result():
    assert CDC.response_meta({}, 200, {}, b"{}")["problems"] == ["response has no result"]


def test_the_front_ends_camel_case_path_names_the_table_in_snake_case():
    meta = CDC.request_meta(
        "POST", "/hclient/emr/receive/emrInfReport", {}, b'{"id": "R1", "disease_code": "0302"}'
    )
    assert meta["table"] == "emr_inf_report" and meta["disease_code"] == "0302"
    answer = b'{"result": false, "desc": "x", "id": null, "errorCode": "400", "errorName": "id: missing"}'
    assert CDC.response_meta(meta, 200, {}, answer) == {
        "result": False,
        "errorCode": "400",
        "errorName": "id: missing",
    }
