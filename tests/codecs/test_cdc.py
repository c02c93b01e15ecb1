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
