import json
import re

from harness.codecs import get
from harness.simulators.medins import GATEWAY_PATH, MedinsSimulator
from harness.simulators.wire import HttpRequest
from tests.proxy.faults.http.views import decide, medins


def test_medins_error_is_a_proper_envelope():
    _, plan = decide({"action": {"type": "medins_error", "err_msg": "结算失败"}}, medins())
    assert not plan.forward and plan.reply.status == 200
    doc = json.loads(plan.reply.body)
    assert doc["infcode"] == -1 and doc["err_msg"] == "结算失败" and doc["output"] == {}
    assert re.fullmatch(r"530102\d{14}\d{10}", doc["inf_refmsgid"])
    assert re.fullmatch(r"\d{17}", doc["refmsg_time"]) and re.fullmatch(r"\d{17}", doc["respond_time"])
    meta = get("medins").response_meta({}, 200, {}, plan.reply.body)
    assert meta["ok"] is False and meta["infcode"] == -1


def test_string_infcode_is_kept_as_sent():
    _, plan = decide({"action": {"type": "medins_error", "infcode": "-1"}}, medins())
    assert json.loads(plan.reply.body)["infcode"] == "-1"


def test_the_fault_answers_in_the_shape_the_simulator_refuses_with():
    _, plan = decide({"action": {"type": "medins_error", "err_msg": "结算失败"}}, medins())
    fault = json.loads(plan.reply.body)
    refused = MedinsSimulator().handle(HttpRequest("POST", GATEWAY_PATH, {}, b'{"infno": "9999"}'))
    centre = json.loads(refused.body)
    assert centre["infcode"] == -1  # a refusal of the simulator's own
    assert list(fault) == list(centre)
    assert {k: type(v) for k, v in fault.items()} == {k: type(v) for k, v in centre.items()}
