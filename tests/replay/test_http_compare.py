"""HTTP comparators without sockets: JSON with the kinds' ignore paths, SOAP XML with the HL7 v3 inside."""

from __future__ import annotations

import json

from harness.http_wire import build_head
from harness.replay.comparators import comparator_for
from harness.replay.compare import IgnoreRule, Observed
from harness.replay.http_compare import flatten_json, flatten_xml


def response(status: int, doc, ctype: str = "application/json") -> bytes:
    body = doc if isinstance(doc, bytes) else json.dumps(doc, ensure_ascii=False).encode()
    return (
        build_head(f"HTTP/1.1 {status} X", [("Content-Type", ctype), ("Content-Length", str(len(body)))])
        + body
    )


def medins(infcode=0, setl="S1", ref="530102202601010000000000000001", t="20260101000000000") -> bytes:
    return response(
        200,
        {
            "infcode": infcode,
            "inf_refmsgid": ref,
            "refmsg_time": t,
            "respond_time": t,
            "err_msg": "" if infcode == 0 else "bad",
            "output": {"setlinfo": {"setl_id": setl}},
        },
    )


def test_medins_ignores_reference_ids_and_times_but_not_output():
    cmp = comparator_for("medins")
    same = cmp.compare(
        Observed(medins()), Observed(medins(ref="530102209901010000000000000009", t="20990101000000000"))
    )
    assert same.classification == "equivalent" and {d.path for d in same.differences} == {
        "inf_refmsgid",
        "refmsg_time",
        "respond_time",
    }
    diff = cmp.compare(Observed(medins()), Observed(medins(setl="S2")))
    assert diff.classification == "different" and [d.path for d in diff.differences if not d.ignored] == [
        "output.setlinfo.setl_id"
    ]
    err = cmp.compare(Observed(medins()), Observed(medins(infcode=-1)))
    assert err.classification == "new_error" and (err.original_code, err.replay_code) == ("0", "-1")
    fixed = cmp.compare(Observed(medins(infcode="-1")), Observed(medins()))
    assert fixed.recovered
    assert cmp.compare(Observed(medins()), Observed(medins())).classification == "exact"


def test_fhir_ignores_server_assigned_ids_and_last_updated_and_user_ignores_add():
    a = {
        "resourceType": "Patient",
        "id": "1",
        "meta": {"lastUpdated": "2026-01-01T00:00:00Z", "versionId": "1"},
        "gender": "female",
    }
    b = {**a, "id": "77", "meta": {"lastUpdated": "2026-02-02T00:00:00Z", "versionId": "1"}}
    cmp = comparator_for("fhir")
    assert cmp.compare(Observed(response(201, a)), Observed(response(201, b))).classification == "equivalent"
    c = {**b, "gender": "male"}
    assert cmp.compare(Observed(response(201, a)), Observed(response(201, c))).classification == "different"
    cmp2 = comparator_for("fhir", [IgnoreRule("gender")])
    assert cmp2.compare(Observed(response(201, a)), Observed(response(201, c))).classification == "equivalent"
    bundle = {
        "resourceType": "Bundle",
        "entry": [{"fullUrl": "urn:1", "response": {"location": "Patient/1/_history/1"}}],
    }
    bundle2 = {
        "resourceType": "Bundle",
        "entry": [{"fullUrl": "urn:2", "response": {"location": "Patient/9/_history/1"}}],
    }
    assert (
        cmp.compare(Observed(response(200, bundle)), Observed(response(200, bundle2))).classification
        == "equivalent"
    )
    gone = cmp.compare(
        Observed(response(200, a)), Observed(response(404, {"resourceType": "OperationOutcome"}))
    )
    assert gone.classification == "new_error" and gone.replay_code == "404"


SOAP = """<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope"><soap:Body>
<HIPMessageServerResponse xmlns="urn:hl7-org:v3"><return><![CDATA[<MCCI_IN000002UV01 xmlns="urn:hl7-org:v3">
<id extension="{mid}"/><creationTime value="{t}"/><acknowledgement typeCode="{code}"><targetMessage>
<id extension="M1"/>
</targetMessage></acknowledgement></MCCI_IN000002UV01>]]></return></HIPMessageServerResponse></soap:Body></soap:Envelope>"""


def soap(mid="a", t="1", code="AA") -> bytes:
    return response(200, SOAP.format(mid=mid, t=t, code=code).encode(), "application/soap+xml")


def test_soap_xml_diff_reads_the_hl7v3_inside_and_ignores_message_id_and_time():
    cmp = comparator_for("soap")
    assert cmp.compare(Observed(soap()), Observed(soap(mid="b", t="2"))).classification == "equivalent"
    worse = cmp.compare(Observed(soap()), Observed(soap(code="AE")))
    assert worse.classification == "new_error" and (worse.original_code, worse.replay_code) == ("AA", "AE")
    paths = flatten_xml(
        __import__("harness.safexml", fromlist=["parse"]).parse(
            SOAP.format(mid="a", t="1", code="AA").encode()
        )
    )
    assert any(p.endswith("#/MCCI_IN000002UV01/acknowledgement/@typeCode") for p in paths)


def test_missing_replay_and_flatteners():
    cmp = comparator_for("raw")
    assert (
        cmp.compare(Observed(response(200, {})), Observed(None, outcome="timeout")).classification
        == "missing"
    )
    assert flatten_json({"a": [{"b": 1}, []], "c": None}) == {"a[0].b": "1", "a[1]": "[]", "c": "null"}
