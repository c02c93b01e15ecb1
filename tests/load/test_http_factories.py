import json

from harness.load import fhir_factory, soap_factory
from harness.simulators.fhir import FhirSimulator
from harness.simulators.soap import HipMessageServer
from harness.simulators.wire import HttpRequest


def test_fhir_interactions_create_then_read_search_and_update_what_the_server_created():
    server = FhirSimulator()
    factory = fhir_factory.FhirFactory({n: 1 for n in fhir_factory.INTERACTIONS}, seed=4)
    seen = set()
    for _ in range(60):
        request = factory.make()
        headers = {"content-type": fhir_factory.CONTENT_TYPE} if request.body else {}
        resp = server.handle(HttpRequest(request.method, request.path, headers, request.body or b""))
        assert fhir_factory.answer_failure(resp.status, resp.body) is None, (request, resp.body[:300])
        factory.created_as(request, resp.headers.get("Location"))
        if request.name == "search-type Patient":
            assert json.loads(resp.body)["total"] == 1
        seen.add(request.name)
    assert seen == set(fhir_factory.INTERACTIONS)
    bad = server.handle(
        HttpRequest(
            "POST",
            "/fhir/Patient",
            {"content-type": fhir_factory.CONTENT_TYPE},
            b'{"resourceType": "Patient", "gender": "toto"}',
        )
    )
    assert fhir_factory.answer_failure(bad.status, bad.body).startswith("HTTP 422: Patient.gender")


def test_soap_calls_register_and_query_in_both_soap_versions():
    server = HipMessageServer()
    for version in ("1.1", "1.2"):
        factory = soap_factory.SoapFactory(
            {"PatientInfoRegister": 1, "PatientInfoQuery": 1}, version=version, seed=5
        )
        for _ in range(20):
            request = factory.make()
            headers = {k.lower(): v for k, v in request.headers.items()}
            resp = server.handle(HttpRequest("POST", "/services/HIPMessageServer", headers, request.body))
            assert soap_factory.answer_failure(resp.status, resp.body) is None, resp.body[:400]
            factory.accepted(request)
    unknown = soap_factory.SoapFactory({"PatientInfoQuery": 1}, seed=1)
    unknown.registered.append(("NOBODY", "530102199001011234"))
    request = unknown.make()
    resp = server.handle(
        HttpRequest(
            "POST",
            "/services/HIPMessageServer",
            {k.lower(): v for k, v in request.headers.items()},
            request.body,
        )
    )
    assert soap_factory.answer_failure(resp.status, resp.body) == "AE: no patient with id NOBODY"
    fault = server.handle(
        HttpRequest("POST", "/services/HIPMessageServer", {"content-type": "text/xml"}, b"<x/>")
    )
    assert soap_factory.answer_failure(fault.status, fault.body).startswith(
        "SOAP Fault (HTTP 500): SOAPAction"
    )
