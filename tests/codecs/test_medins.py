import json

from harness import codecs
from harness.codecs.medins import infcode_ok

MEDINS = codecs.get("medins")
PATH = "/fsi/api/rsfComIfsService/callService"


def test_request_envelope_fields():
    body = {
        "infno": "2207",
        "msgid": "H53010200001202611250930000001",
        "mdtrtarea_admvs": "530100",
        "insuplc_admdvs": "530102",
        "fixmedins_code": "H53010200001",
        "input": {},
    }
    meta = MEDINS.request_meta("POST", PATH, {}, json.dumps(body).encode())
    assert meta["infno"] == "2207"
    assert meta["mdtrtarea_admvs"] == "530100"
    assert meta["msgid"].startswith("H53010200001")


def test_infno_from_path_suffix_when_body_lacks_it():
    meta = MEDINS.request_meta("POST", PATH + "/2207", {}, b"{}")
    assert meta["infno"] == "2207"


def test_gbk_body_is_read_and_noted():
    body = json.dumps({"infno": "1101", "opter_name": "张三"}, ensure_ascii=False).encode("gbk")
    meta = MEDINS.request_meta("POST", PATH, {}, body)
    assert meta["infno"] == "1101"
    assert "not UTF-8" in meta["problems"][0]


def test_infcode_number_and_string():
    num = MEDINS.response_meta({}, 200, {}, b'{"infcode": 0, "inf_refmsgid": "x"}')
    text = MEDINS.response_meta({}, 200, {}, b'{"infcode": "-1", "err_msg": "mdtrt_id unknown"}')
    assert num["infcode"] == 0 and num["infcode_type"] == "number" and num["ok"] is True
    assert text["infcode"] == "-1" and text["infcode_type"] == "string" and text["ok"] is False
    assert text["err_msg"] == "mdtrt_id unknown"


def test_infcode_ok():
    assert infcode_ok("0") and infcode_ok(0) and infcode_ok(" 0 ")
    assert infcode_ok(-1) is False and infcode_ok("abc") is False and infcode_ok(None) is None


def test_missing_infcode_is_a_problem():
    meta = MEDINS.response_meta({}, 200, {}, b'{"output": {}}')
    assert meta["problems"] == ["response has no infcode"]
