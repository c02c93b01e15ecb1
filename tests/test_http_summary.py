"""The summary columns of HTTP exchanges, from the kind codecs' metadata."""

from __future__ import annotations

import pytest

from harness import http_summary as s


@pytest.mark.parametrize(
    ("kind", "status", "meta", "code", "outcome"),
    [
        ("medins", 200, {"infcode": 0}, "0", "ok"),
        ("medins", 200, {"infcode": "0"}, "0", "ok"),
        ("medins", 200, {"infcode": -1}, "-1", "nak"),
        ("medins", 200, {}, "200", "nak"),  # no infcode: not an accepted answer
        ("medins", 502, {"infcode": 0}, "0", "nak"),
        ("fhir", 201, {"status": 201}, "201", "ok"),
        ("fhir", 404, {"status": 404}, "404", "nak"),
        ("soap", 200, {"ack_code": "AA"}, "AA", "ok"),
        ("soap", 200, {"ack_code": "AE"}, "AE", "nak"),
        ("soap", 500, {"fault_code": "soap:Server"}, "soap:Server", "nak"),
        ("cdc", 200, {"result": True}, "true", "ok"),
        ("cdc", 200, {"result": False}, "false", "nak"),
        ("raw", 204, {}, "204", "ok"),
    ],
)
def test_codes_and_outcomes(kind, status, meta, code, outcome):
    assert s.ack_code(kind, status, meta) == code
    assert s.response_outcome(kind, status, meta) == outcome


def test_message_types_and_control_ids():
    assert s.message_type("medins", {"infno": "2207"}) == "2207"
    assert s.control_id("medins", {"msgid": "H1"}) == "H1"
    assert s.message_type("fhir", {"interaction": "create", "resource_type": "Patient"}) == "create Patient"
    assert s.message_type("fhir", {"interaction": "transaction", "resource_type": None}) == "transaction"
    assert s.message_type("soap", {"action": "PatientInfoRegister", "interaction": "PRPA_IN201311UV02"}) == (
        "PatientInfoRegister"
    )
    assert s.message_type("cdc", {"table": "emr_inf_report"}) == "emr_inf_report"
    assert s.message_type("raw", {}) is None and s.control_id("raw", {}) is None
