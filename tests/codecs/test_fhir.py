import json

import pytest

from harness import codecs
from harness.codecs.fhir import interaction

FHIR = codecs.get("fhir")


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/fhir/Patient/123", ("read", "Patient", "123")),
        ("GET", "/csp/healthshare/app/fhir/r4/Patient/123", ("read", "Patient", "123")),
        ("PUT", "/fhir/Patient/123", ("update", "Patient", "123")),
        ("DELETE", "/fhir/Patient/123", ("delete", "Patient", "123")),
        ("POST", "/fhir/Patient", ("create", "Patient", None)),
        ("GET", "/fhir/Observation?patient=1", ("search-type", "Observation", None)),
        ("POST", "/fhir/Observation/_search", ("search-type", "Observation", None)),
        ("GET", "/fhir/Patient/1/_history/2", ("vread", "Patient", "1")),
        ("GET", "/fhir/Patient/1/_history", ("history-instance", "Patient", "1")),
        ("GET", "/fhir/metadata", ("capabilities", None, None)),
        ("POST", "/fhir", ("transaction", None, None)),
        ("POST", "/fhir/Patient/$match", ("operation", "Patient", None)),
    ],
)
def test_interactions(method, path, expected):
    assert interaction(method, path) == expected


def test_batch_bundle():
    meta = FHIR.request_meta(
        "POST", "/fhir", {}, json.dumps({"resourceType": "Bundle", "type": "batch"}).encode()
    )
    assert meta["interaction"] == "batch"
    assert meta["bundle_type"] == "batch"


def test_create_names_resource_type_from_body_when_path_has_none():
    meta = FHIR.request_meta("POST", "/fhir/Patient", {}, b'{"resourceType": "Patient"}')
    assert meta == {"interaction": "create", "resource_type": "Patient"}


def test_operation_outcome_issues():
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [
            {"severity": "error", "code": "invalid", "diagnostics": "Patient.gender: 'toto' not in value set"}
        ],
    }
    meta = FHIR.response_meta({}, 422, {}, json.dumps(outcome).encode())
    assert meta["status"] == 422
    assert meta["issues"] == [
        {"severity": "error", "code": "invalid", "diagnostics": "Patient.gender: 'toto' not in value set"}
    ]


def test_searchset_and_location():
    body = json.dumps({"resourceType": "Bundle", "type": "searchset", "total": 2, "entry": [{}, {}]}).encode()
    meta = FHIR.response_meta({}, 200, {"location": "Patient/1/_history/1"}, body)
    assert meta["bundle_type"] == "searchset"
    assert meta["total"] == 2 and meta["entries"] == 2
    assert meta["location"] == "Patient/1/_history/1"


def test_bad_json_is_a_problem_not_an_exception():
    meta = FHIR.request_meta("POST", "/fhir/Patient", {}, b'{"resourceType": ')
    assert meta["interaction"] == "create"
    assert "not valid JSON" in meta["problems"][0]
