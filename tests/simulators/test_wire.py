import json

import pytest

from harness.simulators.cdc import CdcFrontEnd
from harness.simulators.fhir import FhirSimulator
from harness.simulators.medins import GATEWAY_PATH, MedinsSimulator
from harness.simulators.wire import MAX_JSON_DEPTH, HttpRequest, JsonBodyError, load_json


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"\xe4\xb8", "not UTF-8: byte 0xe4 at offset 0"),
        (b"  ", "empty"),
        (b'{"a": }', "not valid JSON: Expecting value at line 1 column 7"),
        (nested(MAX_JSON_DEPTH + 1), f"deeper than {MAX_JSON_DEPTH}"),
        (nested(100_000), f"deeper than {MAX_JSON_DEPTH}"),  # past the parser's own recursion limit
        (b'{"a": ' * 70 + b"1" + b"}" * 70, f"deeper than {MAX_JSON_DEPTH}"),
    ],
)
def test_load_json_refuses_with_a_reason(body, words):
    with pytest.raises(JsonBodyError) as caught:
        load_json(body)
    assert words in str(caught.value)


def test_load_json_accepts_up_to_the_limit_and_brackets_in_strings():
    assert load_json(nested(MAX_JSON_DEPTH)) is not None
    assert load_json(b'{"x": "[[[[{{{{"}') == {"x": "[[[[{{{{"}


def test_every_json_simulator_answers_deep_nesting_in_its_own_format():
    deep = nested(50_000)
    medins = json.loads(MedinsSimulator().handle(HttpRequest("POST", GATEWAY_PATH, {}, deep)).body)
    assert medins["infcode"] == -1 and "deeper than" in medins["err_msg"]
    resp = FhirSimulator().handle(
        HttpRequest("POST", "/fhir/Patient", {"content-type": "application/fhir+json"}, deep)
    )
    assert resp.status == 400 and "deeper than" in json.loads(resp.body)["issue"][0]["diagnostics"]
    resp = CdcFrontEnd().handle(HttpRequest("POST", "/cdc/emr_inf_report", {}, deep))
    assert resp.status == 400 and "deeper than" in json.loads(resp.body)["reasons"][0]
