import http.client
import json
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.simulators.fhir import FhirSimulator
from harness.simulators.wire import HttpRequest
from tests.childproc import start_listening

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "fhir"
JSON = {"content-type": "application/fhir+json", "host": "fhir.test"}


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def validator():
    from harness.simulators.fhir import Validator

    return Validator()


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def core(validator, clock):
    return FhirSimulator(validator=validator, clock=clock)


def call(core, method, target, body=None, headers=None):
    raw = body if isinstance(body, bytes) or body is None else json.dumps(body, ensure_ascii=False).encode()
    resp = core.handle(HttpRequest(method, target, dict(JSON, **(headers or {})), raw or b""))
    return resp, json.loads(resp.body) if resp.body else None


def patient(**extra):
    return dict(json.loads((FIXTURES / "patient.json").read_text(encoding="utf-8")), **extra)


def outcome_text(body) -> str:
    assert body["resourceType"] == "OperationOutcome", body
    return " | ".join(i["diagnostics"] for i in body["issue"])


def test_create_read_update_vread_delete(core):
    resp, body = call(core, "POST", "/fhir/Patient", patient())
    assert resp.status == 201 and resp.headers["Content-Type"].startswith("application/fhir+json")
    assert resp.headers["Location"] == f"http://fhir.test/fhir/Patient/{body['id']}/_history/1"
    assert resp.headers["ETag"] == 'W/"1"' and body["meta"]["versionId"] == "1"
    assert resp.headers["Last-Modified"] == "Mon, 05 Jan 2026 09:30:00 GMT"
    pid = body["id"]
    resp, read = call(core, "GET", f"/fhir/Patient/{pid}")
    assert resp.status == 200 and read == body and read["name"][0]["text"] == "周兰𬌗"
    resp, updated = call(core, "PUT", f"/fhir/Patient/{pid}", dict(read, gender="female"))
    assert resp.status == 200 and updated["meta"]["versionId"] == "2"
    resp, body = call(core, "PUT", f"/fhir/Patient/{pid}", dict(read, gender="other"), {"if-match": 'W/"1"'})
    assert resp.status == 412 and "current version is 2" in outcome_text(body)
    assert call(core, "GET", f"/fhir/Patient/{pid}/_history/1")[1]["gender"] == "male"
    resp, body = call(core, "PUT", f"/fhir/Patient/{pid}", dict(read, id="other"))
    assert resp.status == 400 and "does not match the URL's id" in outcome_text(body)
    assert call(core, "DELETE", f"/fhir/Patient/{pid}")[0].status == 204
    resp, body = call(core, "GET", f"/fhir/Patient/{pid}")
    assert resp.status == 410 and "deleted" in outcome_text(body)
    resp, body = call(core, "PUT", "/fhir/Patient/client-id-1", patient(id="client-id-1"))
    assert resp.status == 201 and body["id"] == "client-id-1"
    assert call(core, "GET", "/fhir/Patient/nope")[0].status == 404


@pytest.mark.parametrize(
    ("resource", "status", "words"),
    [
        ({"gender": "toto"}, 422, ["Patient.gender", "'toto'", "administrative-gender"]),
        (
            {"identifier": [{"use": "bad", "value": "1"}]},
            422,
            ["Patient.identifier[0].use", "identifier-use"],
        ),
        ({"birthDate": "1985-13-07"}, 400, ["Patient.birthDate"]),
        ({"active": "maybe"}, 400, ["Patient.active", "boolean"]),
        ({"colour": "blue"}, 400, ["Patient.colour", "Extra inputs"]),
        ({"contact": [{"gender": "x"}]}, 422, ["Patient.contact[0].gender"]),
    ],
)
def test_invalid_resources_get_an_operation_outcome_naming_the_element(core, resource, status, words):
    resp, body = call(core, "POST", "/fhir/Patient", patient(**resource))
    assert resp.status == status
    text = outcome_text(body)
    for word in words:
        assert word in text
    assert not core.store


def test_required_bindings_beyond_patient(core):
    obs = {"resourceType": "Observation", "status": "done", "code": {"text": "x"}}
    resp, body = call(core, "POST", "/fhir/Observation", obs)
    assert resp.status == 422 and "observation-status" in outcome_text(body)
    enc = {"resourceType": "Encounter", "status": "open", "class": {"code": "AMB"}}
    assert "encounter-status" in outcome_text(call(core, "POST", "/fhir/Encounter", enc)[1])
    cond = {
        "resourceType": "Condition",
        "subject": {"reference": "Patient/1"},
        "clinicalStatus": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "gone"}]
        },
    }
    assert "Condition.clinicalStatus.coding[0].code" in outcome_text(
        call(core, "POST", "/fhir/Condition", cond)[1]
    )
    resp, body = call(core, "POST", "/fhir/Observation", obs | {"status": "final"})
    assert resp.status == 201


def test_bad_input_is_an_operation_outcome_not_a_crash(core):
    resp, body = call(core, "POST", "/fhir/Patient", b'{"resourceType": "Patient",')
    assert resp.status == 400 and "not valid JSON" in outcome_text(body)
    resp, body = call(core, "POST", "/fhir/Patient", {"resourceType": "Foo"})
    assert resp.status == 400 and "unknown resourceType 'Foo'" in outcome_text(body)
    resp, body = call(core, "POST", "/fhir/Foo", {"resourceType": "Foo"})
    assert resp.status == 404 and "unknown resource type 'Foo'" in outcome_text(body)
    resp, body = call(core, "POST", "/fhir/HumanName", {"resourceType": "HumanName"})
    assert resp.status == 404 and "unknown resource type 'HumanName'" in outcome_text(body)
    resp, body = call(core, "POST", "/fhir/Patient", {"resourceType": "DomainResource"})
    assert resp.status == 400 and "unknown resourceType 'DomainResource'" in outcome_text(body)
    nested = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": {"resourceType": "Nonsense"}, "request": {"method": "POST", "url": "Patient"}}
        ],
    }
    resp, body = call(core, "POST", "/fhir", nested)
    assert resp.status == 400 and "unknown resourceType 'Nonsense'" in outcome_text(body)
    contained = patient(contained=[{"resourceType": "Bogus", "id": "x"}])
    assert "Bogus" in outcome_text(call(core, "POST", "/fhir/Patient", contained)[1])
    resp, body = call(
        core, "POST", "/fhir/Patient", json.dumps(patient()).encode(), {"content-type": "text/plain"}
    )
    assert resp.status == 415
    resp, body = call(core, "POST", "/fhir/Observation", patient())
    assert resp.status == 400 and "does not match the URL" in outcome_text(body)
    assert call(core, "GET", "/fhir/Patient/bad id!")[0].status == 400
    assert call(core, "GET", "/elsewhere")[0].status == 404
    big = core.too_large(HttpRequest("POST", "/fhir/Patient"), 10)
    assert big.status == 413 and "10-byte limit" in outcome_text(json.loads(big.body))
    assert call(core, "POST", "/fhir/Patient", patient())[0].status == 201


def test_search_by_id_identifier_patient_and_last_updated(core, clock):
    ids = []
    for i in range(3):
        clock.now += timedelta(days=1)
        ident = [{"system": "urn:oid:2.16.156.10011.2.5.1.4", "value": f"P{i}"}]
        ids.append(call(core, "POST", "/fhir/Patient", patient(identifier=ident))[1]["id"])
    obs = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "体温"},
        "subject": {"reference": f"Patient/{ids[1]}"},
    }
    oid = call(core, "POST", "/fhir/Observation", obs)[1]["id"]

    def found(query, rtype="Patient"):
        resp, bundle = call(core, "GET", f"/fhir/{rtype}?{query}")
        assert resp.status == 200 and bundle["type"] == "searchset"
        matched = [e["resource"]["id"] for e in bundle["entry"] if e["search"]["mode"] == "match"]
        assert bundle["total"] == len(matched)
        return matched

    assert found(f"_id={ids[0]},{ids[2]}") == [ids[0], ids[2]]
    assert found("identifier=urn:oid:2.16.156.10011.2.5.1.4|P1") == [ids[1]]
    assert found("identifier=P2") == [ids[2]]
    assert found("identifier=other-system|P2") == []
    assert found(f"patient={ids[1]}", "Observation") == [oid]
    assert found(f"patient=Patient/{ids[0]}", "Observation") == []
    assert found(f"subject=Patient/{ids[1]}", "Observation") == [oid]
    assert found("_lastUpdated=ge2026-01-07") == [ids[1], ids[2]]
    assert found("_lastUpdated=lt2026-01-07") == [ids[0]]
    assert found("_lastUpdated=gt2026-01-07") == [ids[2]]
    assert found("_lastUpdated=le2026-01-07") == [ids[0], ids[1]]
    assert found("_lastUpdated=ge2026-01-06&_lastUpdated=le2026-01-07") == [ids[0], ids[1]]
    resp, body = call(core, "GET", "/fhir/Patient?_lastUpdated=ge2026-99")
    assert resp.status == 400 and "_lastUpdated" in outcome_text(body)
    resp, bundle = call(core, "GET", "/fhir/Patient?_count=2")
    assert len(bundle["entry"]) == 2 and bundle["total"] == 3
    assert any(link["relation"] == "next" for link in bundle["link"])
    resp, bundle = call(core, "GET", "/fhir/Patient?colour=blue")
    assert bundle["entry"][-1]["search"]["mode"] == "outcome" and "colour" in outcome_text(
        bundle["entry"][-1]["resource"]
    )
    resp, body = call(core, "GET", "/fhir/Patient?colour=blue", headers={"prefer": "handling=strict"})
    assert resp.status == 400


def test_transaction_resolves_urn_uuid_references_and_if_none_exist(core):
    bundle = json.loads((FIXTURES / "transaction-bundle.json").read_text(encoding="utf-8"))
    resp, body = call(core, "POST", "/fhir", bundle)
    assert resp.status == 200 and body["type"] == "transaction-response"
    statuses = [e["response"]["status"] for e in body["entry"]]
    assert statuses == ["201 Created"] * 3
    pat_loc, enc_loc, obs_loc = (e["response"]["location"] for e in body["entry"])
    pid, eid = pat_loc.split("/")[1], enc_loc.split("/")[1]
    obs = call(core, "GET", "/fhir/" + obs_loc.rsplit("/_history", 1)[0])[1]
    assert (
        obs["subject"]["reference"] == f"Patient/{pid}"
        and obs["encounter"]["reference"] == f"Encounter/{eid}"
    )
    # Posting it again: the Patient exists (ifNoneExist), the new Encounter points at the existing Patient.
    body = call(core, "POST", "/fhir", bundle)[1]
    assert body["entry"][0]["response"]["status"] == "200 OK"
    assert body["entry"][0]["response"]["location"] == pat_loc


def test_transaction_is_all_or_nothing_and_batch_is_per_entry(core):
    bundle = json.loads((FIXTURES / "transaction-bundle.json").read_text(encoding="utf-8"))
    bundle["entry"][2]["resource"]["status"] = "done"
    resp, body = call(core, "POST", "/fhir", bundle)
    assert resp.status == 422 and "Bundle.entry[2].resource" in outcome_text(body)
    assert not core.store
    bundle["type"] = "batch"
    resp, body = call(core, "POST", "/fhir", bundle)
    assert resp.status == 200 and body["type"] == "batch-response"
    assert [e["response"]["status"][:3] for e in body["entry"]] == ["201", "201", "422"]
    assert "observation-status" in outcome_text(body["entry"][2]["response"]["outcome"])
    dangling = json.loads((FIXTURES / "transaction-bundle.json").read_text(encoding="utf-8"))
    dangling["entry"][2]["resource"]["subject"]["reference"] = "urn:uuid:00000000-0000-0000-0000-000000000000"
    resp, body = call(core, "POST", "/fhir", dangling)
    assert resp.status == 400 and "Bundle.entry[2].resource: reference urn:uuid:0000" in outcome_text(body)
    resp, body = call(core, "POST", "/fhir", dict(bundle, type="collection"))
    assert resp.status == 400 and "transaction or batch" in outcome_text(body)
    # A PUT to an id that fails If-Match rolls back the whole transaction, including the earlier DELETE.
    pid = call(core, "POST", "/fhir/Patient", patient())[1]["id"]
    tx = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"request": {"method": "DELETE", "url": f"Patient/{pid}"}},
            {
                "resource": patient(id="p2"),
                "request": {"method": "PUT", "url": "Patient/p2", "ifMatch": 'W/"7"'},
            },
        ],
    }
    resp, body = call(core, "POST", "/fhir", tx)
    assert resp.status == 412 and "Bundle.entry[1]" in outcome_text(body)
    assert call(core, "GET", f"/fhir/Patient/{pid}")[0].status == 200
    ids = [e["resource"]["id"] for e in call(core, "GET", "/fhir/Patient")[1]["entry"]]
    assert pid in ids and "p2" not in ids


def test_entry_urls_may_be_absolute(core):
    tx = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": patient(id="abs1"),
                "request": {"method": "PUT", "url": "http://fhir.test/fhir/Patient/abs1"},
            },
            {"resource": patient(id="abs2"), "request": {"method": "PUT", "url": "/fhir/Patient/abs2"}},
        ],
    }
    resp, body = call(core, "POST", "/fhir", tx)
    assert resp.status == 200, body
    assert [e["response"]["location"] for e in body["entry"]] == [
        "Patient/abs1/_history/1",
        "Patient/abs2/_history/1",
    ]


def test_conditional_update(core):
    ident = "urn:oid:2.16.156.10011.1.3|53010219850307123X"
    resp, body = call(core, "PUT", f"/fhir/Patient?identifier={ident}", patient())
    assert resp.status == 201
    resp, again = call(core, "PUT", f"/fhir/Patient?identifier={ident}", patient(gender="female"))
    assert resp.status == 200 and again["id"] == body["id"] and again["meta"]["versionId"] == "2"


def test_capability_statement(core):
    resp, body = call(core, "GET", "/fhir/metadata")
    assert (
        resp.status == 200
        and body["resourceType"] == "CapabilityStatement"
        and body["fhirVersion"] == "4.0.1"
    )
    assert "Patient" in [r["type"] for r in body["rest"][0]["resource"]]


def test_state_is_bounded(validator):
    core = FhirSimulator(validator=validator, max_resources=5)
    for _ in range(8):
        call(core, "POST", "/fhir/Patient", patient())
    assert len(core.store) == 5
    assert call(core, "GET", "/fhir/Patient")[1]["total"] == 5


# Corpus bundles (FHIR-Converter output, type batch) posted as transactions. Those that fail must fail for a
# real problem in the bundle; each expected failure is listed with the problem it has.
CORPUS_PROBLEMS = {
    "ADT01-23-expected.json": "request.url 'Organization/' has no id",  # PUT with an empty id
    "ADT01-28-expected.json": "Provenance.agent: Field required",  # Provenance.agent is 1..*
    "ADT04-28-expected.json": "Provenance.agent: Field required",
    "LAB-ORU-1-expected.json": "Provenance.agent[0].who: Field required",  # agent.who is 1..1
    "LAB-ORU-2-expected.json": "Provenance.agent[0].who: Field required",
    "ADT04-23-expected.json": "'JP:1234567' is not in the required value set contact-point-system",
    "OUL-R24-01-expected.json": "Bundle.entry[100].request with method and url is required",  # no request
    "VXU-V04-01-expected.json": "Bundle.entry[88].request with method and url is required",
}


def test_public_corpus_bundles_as_transactions(corpus_dir, validator):
    files = sorted((corpus_dir / "fhir" / "fhir-converter-expected").glob("*.json"))
    assert files
    core = FhirSimulator(validator=validator)
    failed = {}
    for path in files:
        bundle = json.loads(path.read_text(encoding="utf-8"))
        bundle["type"] = "transaction"
        resp, body = call(core, "POST", "/fhir", bundle)
        if resp.status == 200:
            assert body["type"] == "transaction-response" and len(body["entry"]) == len(bundle["entry"])
            for entry, sent in zip(body["entry"], bundle["entry"], strict=True):
                if sent["request"]["method"] == "PUT":
                    rid = sent["request"]["url"].split("/")[1]
                    stored = call(core, "GET", f"/fhir/{sent['request']['url']}")
                    assert entry["response"]["status"][:3] in ("200", "201")
                    assert stored[0].status in (200, 410) and (
                        stored[0].status == 410 or stored[1]["id"] == rid
                    )
        else:
            failed[path.name] = outcome_text(body)
    assert set(failed) == set(CORPUS_PROBLEMS), failed
    for name, problem in CORPUS_PROBLEMS.items():
        assert problem in failed[name]


# ---------------------------------------------------------------- real sockets
@pytest.fixture
def server(processes):
    return start_listening(processes, "mock", "fhir", "--listen", "127.0.0.1:0", "--max-body", "100000")


def test_http_client_crud_and_bad_input(server):
    _, port = server
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def send(method, path, body=None, ctype="application/fhir+json"):
        conn.request(method, path, body, {"Content-Type": ctype} if body is not None else {})
        resp = conn.getresponse()
        data = resp.read()
        return resp, json.loads(data) if data else None

    resp, created = send("POST", "/fhir/Patient", (FIXTURES / "patient.json").read_bytes())
    assert resp.status == 201
    location = resp.getheader("Location")
    assert location == f"http://127.0.0.1:{port}/fhir/Patient/{created['id']}/_history/1"
    resp, read = send("GET", f"/fhir/Patient/{created['id']}")
    assert resp.status == 200 and read == created and resp.getheader("ETag") == 'W/"1"'
    resp, body = send("POST", "/fhir/Patient", b"{not json")
    assert resp.status == 400 and body["resourceType"] == "OperationOutcome"
    resp, body = send("POST", "/fhir", (FIXTURES / "transaction-bundle.json").read_bytes())
    assert resp.status == 200 and body["type"] == "transaction-response"
    resp, body = send("GET", "/fhir/Patient?identifier=urn:oid:2.16.156.10011.1.3|532901199002030425")
    assert body["total"] == 1
    resp, body = send("POST", "/fhir/Patient", b'{"resourceType":"Patient","text":"' + b"x" * 200_000 + b'"}')
    assert resp.status == 413 and body["resourceType"] == "OperationOutcome"
    conn.close()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    resp, body = send("GET", "/fhir/metadata")
    assert resp.status == 200 and body["resourceType"] == "CapabilityStatement"
    conn.close()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed on this machine")
def test_curl_create_and_read(server):
    _, port = server
    done = subprocess.run(
        [
            "curl",
            "-sS",
            "-i",
            "-H",
            "Content-Type: application/fhir+json",
            "--data-binary",
            f"@{FIXTURES / 'patient.json'}",
            f"http://127.0.0.1:{port}/fhir/Patient",
        ],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert done.stdout.startswith("HTTP/1.1 201")
    location = re.search(r"^Location: (\S+)", done.stdout, re.M | re.I).group(1)
    done = subprocess.run(["curl", "-sS", "-f", location], capture_output=True, text=True, timeout=20)
    assert json.loads(done.stdout)["gender"] == "male"


FHIR_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    key=st.sampled_from(
        [
            "resourceType",
            "id",
            "gender",
            "name",
            "identifier",
            "birthDate",
            "contained",
            "meta",
            "telecom",
            "x",
        ]
    ),
    value=FHIR_VALUES,
)
def test_any_patient_field_gets_a_resource_or_an_outcome(validator, key, value):
    core = FhirSimulator(validator=validator)
    resp, body = call(core, "POST", "/fhir/Patient", patient(**{key: value}))
    assert resp.status in (201, 400, 422)
    if resp.status != 201:
        assert body["resourceType"] == "OperationOutcome" and body["issue"]
