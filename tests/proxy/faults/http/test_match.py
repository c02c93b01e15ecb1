"""HTTP match keys: method, path, status, header, json, xpath (via safexml), meta; counting gates."""

import pytest

from harness.proxy.faults.params import RuleError
from harness.proxy.faults.rules import parse_rule
from tests.proxy.faults.http.views import MEDINS_2207, decide, medins, soap12, view

XXE = (
    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
    b'<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope"><soap:Body><a>&e;</a></soap:Body>'
    b"</soap:Envelope>"
)


def fires(match, subject, direction="request") -> bool:
    return decide({"match": match, "action": {"type": "reset"}}, subject, direction)[0] is not None


@pytest.mark.parametrize(
    ("match", "expected"),
    [
        ({"method": "POST"}, True),
        ({"method": ["GET", "PUT"]}, False),
        ({"path": "/fsi/api/*"}, True),
        ({"path": "re:callService$"}, True),
        ({"path": "/fhir/*"}, False),
        ({"header": {"content-type": "re:json"}}, True),
        ({"header": {"X-Missing": "x"}}, False),
        ({"json": {"infno": "2207", "input.data.mdtrt_id": "M1"}}, True),
        ({"json": {"input.data.medfee_sumamt": "79.1"}}, True),
        ({"json": {"input.data.psn_no": "re:^5301"}}, True),
        ({"json": {"input.data.nothing": None}}, True),
        ({"json": {"infno": "2206"}}, False),
        ({"meta": {"infno": "2207"}}, True),
        ({"meta": {"infno": ["2206", "2207"], "mdtrtarea_admvs": "530102"}}, True),
        ({"meta": {"infno": "9001"}}, False),
    ],
)
def test_medins_request_matching(match, expected):
    assert fires(match, medins()) is expected


def test_xpath_reads_the_soap_body_and_never_resolves_entities():
    assert fires({"xpath": {"//*[local-name()='action']": "PatientInfoRegister"}}, soap12())
    assert not fires({"xpath": {"//*[local-name()='action']": "PatientInfoQuery"}}, soap12())
    assert fires({"xpath": {"count(//*[local-name()='message'])": "1"}}, soap12())
    bad = view("soap", "POST", "/s", XXE, {"Content-Type": "application/soap+xml"})
    assert not fires({"xpath": {"//*[local-name()='a']": "re:root"}}, bad)
    assert bad._xml_error and "DTD" in bad._xml_error


def test_malformed_json_body_matches_no_json_condition():
    subject = view("medins", "POST", "/x", b"{not json", {"Content-Type": "application/json"})
    assert not fires({"json": {"infno": None}}, subject)


def test_counting_gates_apply_to_http_rules():
    from harness.proxy.faults.engine import FaultEngine
    from harness.proxy.faults.http_plan import HttpPlan

    engine = FaultEngine(
        "t",
        "http",
        [
            {
                "match": {"meta": {"infno": "2207"}, "every_nth": 2, "first_n": 4},
                "action": {"type": "status", "code": 500},
                "limit": 1,
            }
        ],
    )
    subject = medins()
    hits = [engine.decide("request", subject.body, subject, plan=HttpPlan()) is not None for _ in range(6)]
    assert hits == [False, True, False, False, False, False]


def test_status_condition_on_responses():
    subject = medins(MEDINS_2207)
    subject.status = 503
    assert fires({"direction": "response", "status": "5*"}, subject, "response")
    assert not fires({"direction": "response", "status": 200}, subject, "response")


@pytest.mark.parametrize(
    ("match", "where"),
    [
        ({"method": "P OST"}, "match.method"),
        ({"json": {"a..[x]": "1"}}, "match.json"),
        ({"xpath": {"//[": "1"}}, "match.xpath"),
        ({"message_type": "ADT^A01"}, "match.message_type: unknown key"),
    ],
)
def test_bad_conditions_name_the_key(match, where):
    with pytest.raises(RuleError, match=where.replace(".", r"\.")):
        parse_rule({"match": match, "action": {"type": "reset"}}, "http")
