"""JSON stays the same JSON but for the masked values; XML stays well-formed with its namespaces, CDATA
and charset; HTTP messages keep their framing; one person masks alike in every kind."""

from __future__ import annotations

import gzip
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from harness.mask import MaskError
from harness.mask.http import mask as mask_http
from harness.mask.masker import Masker
from harness.mask.policy import load

from .support import KEY, ROOT, leaks, masker

M = masker()
F = ROOT / "fixtures"
CDC = ROOT / "specs" / "cdc" / "examples"
PERSON = ["53010219850307123X", "周兰𬌗", "13800000000", "P0001234", "模拟路1号"]


def test_one_person_masks_alike_in_fhir_cdc_medins_hl7v3_and_hl7v2():
    fhir = json.loads(M.content((F / "fhir" / "patient.json").read_bytes(), "fhir"))
    cdc = json.loads(M.content((CDC / "emr_patient_info.json").read_bytes(), "cdc"))
    medins = json.loads(M.content((F / "medins" / "visit-02-1101.json").read_bytes(), "medins"))
    v3 = etree.fromstring(M.content((F / "soap" / "PRPA_IN201311UV02.xml").read_bytes(), "hl7v3"))
    ns = {"v3": "urn:hl7-org:v3"}
    person = v3.find(".//v3:patientPerson", ns)
    masked_id = fhir["identifier"][0]["value"]
    assert (
        masked_id
        == cdc["id_card"]
        == medins["input"]["data"]["certno"]
        == medins["input"]["data"]["mdtrt_cert_no"]
    )
    assert masked_id == person.find("v3:id/v3:item", ns).get("extension")
    assert fhir["name"][0]["text"] == cdc["patient_name"] == person.find(".//v3:part", ns).get("value")
    assert fhir["name"][0]["family"] + "".join(fhir["name"][0]["given"]) == cdc["patient_name"]
    assert (
        fhir["telecom"][0]["value"]
        == cdc["tel"]
        == person.find("v3:telecom/v3:item", ns).get("value")
    )
    assert fhir["identifier"][1]["value"] == cdc["id"]
    assert (
        fhir["birthDate"] == cdc["birth_date"] == f"{masked_id[6:10]}-{masked_id[10:12]}-{masked_id[12:14]}"
    )
    assert fhir["address"][0]["text"] == cdc["current_addr_detail"]
    text = "MSH|^~\\&|A|B|C|D|20260101||ADT^A08|X1|P|2.5\r"
    text += "PID|1||P0001234^^^H^MR~53010219850307123X^^^CHN^ID||周^兰𬌗\r"
    hl7 = M.content(text, "hl7v2")
    assert f"|{fhir['identifier'][1]['value']}^^^H^MR~{masked_id}^^^CHN^ID||" in hl7
    assert f"||{fhir['name'][0]['family']}^{fhir['name'][0]['given'][0]}\r" in hl7


@pytest.mark.parametrize(
    "path",
    [
        "fixtures/fhir/patient.json",
        "fixtures/fhir/transaction-bundle.json",
        "specs/cdc/examples/emr_inf_report.json",
        "fixtures/medins/visit-07-2207.json",
    ],
)
def test_json_keeps_every_byte_but_the_masked_values(path):
    original = (ROOT / path).read_bytes()
    out = M.content(original, "raw")
    assert not leaks(out, [*PERSON, "532901199002030425", "段云亅"])
    a, b = json.loads(original), json.loads(out)
    changed = [k for k, _ in _diff(a, b)]
    assert changed and all(isinstance(k, str) for k in changed)
    assert original.count(b"\n") == out.count(b"\n") and original.count(b'": ') == out.count(b'": ')
    if "2207" in path:
        assert b'"medfee_sumamt": 79.1' in out  # numbers are never re-serialised


def _diff(a, b, path=""):
    if isinstance(a, dict):
        for k in a:
            yield from _diff(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            yield from _diff(x, y, f"{path}[{i}]")
    elif a != b:
        yield path, (a, b)


@given(
    st.lists(
        st.sampled_from(["周兰𬌗", "\\u5468\\u5170", "13800000000", 'a\\"b', "x"]), min_size=1, max_size=6
    ),
    st.booleans(),
)
@settings(max_examples=60)
def test_json_with_escapes_numbers_and_odd_spacing_stays_valid_json(values, as_number):
    tel = "13800000000" if as_number else '"13800000000"'
    items = ",\n   ".join(f'{{"patient_name" :"{v}", "tel": {tel}}}' for v in values)
    text = f'{{"rows":[ {items} ],"n":7.50}}'
    out = M.content(text, "cdc")
    doc = json.loads(out)
    assert "13800000000" not in out and '"n":7.50}' in out
    assert all(isinstance(r["tel"], int if as_number else str) for r in doc["rows"])


def test_a_soap_envelope_keeps_cdata_namespaces_and_its_gbk_charset():
    original = (F / "soap" / "PatientInfoRegister-soap12.xml").read_text(encoding="utf-8")
    gbk = original.replace("𬌗", "乗").replace('encoding="UTF-8"', 'encoding="GBK"', 1).encode("gbk")
    out = M.content(gbk, "soap")
    assert out.startswith(b'<?xml version="1.0" encoding="GBK"?>')
    text = out.decode("gbk")
    assert "<![CDATA[<PRPA_IN201311UV02" in text and 'xmlns:urn="urn:hl7-org:v3"' in text
    root = etree.fromstring(out)
    inner = etree.fromstring(root.find(".//message").text.encode("utf-8"))
    assert inner.nsmap[None] == "urn:hl7-org:v3"
    assert not leaks(out, ["53010219850307123X", "周兰乗", "13800000000", "P0001234"])


def test_http_messages_keep_their_framing_with_corrected_lengths_and_redacted_credentials():
    body = (F / "fhir" / "patient.json").read_bytes()
    zipped = gzip.compress(body)
    request = (
        b"POST /fhir/Patient HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer abc\r\nContent-Encoding: gzip\r\n"
        b"Content-Type: application/fhir+json\r\nContent-Length: %d\r\n\r\n%s" % (len(zipped), zipped)
    )
    pass_ = M.new_pass()
    out = mask_http(M, request, "fhir", pass_, request=True).render(pass_.replacements)
    head, _, rest = out.partition(b"\r\n\r\n")
    assert b"Authorization: [redacted]" in head and b"Content-Length: %d" % len(rest) in head
    assert not leaks(gzip.decompress(rest), PERSON)
    chunked = (
        b"HTTP/1.1 201 Created\r\nLocation: /fhir/Patient/1?identifier=53010219850307123X\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    )
    pass_ = M.new_pass()
    out = mask_http(M, chunked, "fhir", pass_, request=False).render(pass_.replacements)
    assert out.endswith(b"\r\n0\r\n\r\n") and not leaks(out, PERSON)
    search = b"GET /fhir/Patient?identifier=urn:oid:2.16.156.10011.1.3|53010219850307123X&name=%E5%91%A8"
    search += b" HTTP/1.1\r\nHost: x\r\n\r\n"
    pass_ = M.new_pass()
    out = mask_http(M, search, "fhir", pass_, request=True).render(pass_.replacements)
    assert out.startswith(b"GET /fhir/Patient?identifier=urn:oid:2.16.156.10011.1.3|")
    assert not leaks(out, ["53010219850307123X"]) and b"%E5%91%A8" not in out


def test_content_that_cannot_be_masked_is_refused_never_passed_on():
    for data, kind in (('{"psn_name": "周'.encode(), "medins"), (b"<a><b></a>", "soap"), (b"hello", "raw")):
        with pytest.raises(MaskError):
            M.content(data, kind)
    cut = b'POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{"certno": "530102'
    with pytest.raises(MaskError, match="cut short"):
        mask_http(M, cut, "medins", M.new_pass(), request=True)


def test_dates_can_be_kept_and_fhir_birth_dates_coarsened(tmp_path):
    policy = tmp_path / "coarse.yaml"
    policy.write_text(
        "dates: {shift: false}\nfhir:\n  elements:\n    Patient.birthDate: {as: date, precision: year}\n"
    )
    out = json.loads(Masker(load(policy), KEY).content((F / "fhir" / "patient.json").read_bytes(), "fhir"))
    assert out["birthDate"] == "1985"
    # no rule names the identifier, but a 身份证 is found by its shape all the same (dates kept)
    masked_id = out["identifier"][0]["value"]
    assert masked_id != "53010219850307123X" and masked_id[:14] == "53010219850307"


def test_the_simulators_judge_masked_requests_as_they_judge_the_originals():
    """The checks a centre applies (GB 11643 check digits, id card agreeing with sex and birth date, FHIR
    structure and bindings, the HL7 v3 patient identifier) accept the masked requests as the originals."""
    from harness.simulators.cdc import CdcFrontEnd
    from harness.simulators.fhir import FhirSimulator
    from harness.simulators.medins import MedinsSimulator
    from harness.simulators.soap import HipMessageServer
    from harness.simulators.wire import HttpRequest

    from ..simulators.medins_visit import fill, steps

    visit = steps()
    medins = json.dumps(fill(visit["1101"], {"sign_no": ""}), ensure_ascii=False).encode("utf-8")
    soap = (F / "soap" / "PatientInfoRegister-soap12.xml").read_bytes()
    report, patient = (CDC / "emr_inf_report.json").read_bytes(), (CDC / "emr_patient_info.json").read_bytes()
    cases = [
        (lambda: MedinsSimulator(), "POST", "/fsi/api/rsfComIfsService/callService", medins, "medins", {}),
        (lambda: CdcFrontEnd(), "POST", "/cdc/emr_inf_report", report, "cdc", {}),
        (CdcFrontEnd, "POST", "/cdc/emr_patient_info", patient, "cdc", {}),
        (lambda: FhirSimulator(), "POST", "/fhir/Patient", (F / "fhir" / "patient.json").read_bytes(), "fhir",
         {"content-type": "application/fhir+json"}),
        (lambda: HipMessageServer(), "POST", "/services/HIPMessageServer", soap, "soap",
         {"content-type": "application/soap+xml; charset=utf-8"}),
    ]  # fmt: skip
    for make, method, target, body, kind, headers in cases:
        before = make().handle(HttpRequest(method, target, headers, body))
        after = make().handle(HttpRequest(method, target, headers, M.content(body, kind)))
        assert after.status == before.status, (kind, after.body)
        if kind in ("medins", "cdc"):
            a, b = json.loads(before.body), json.loads(after.body)
            assert (a.get("infcode"), a.get("result")) == (b.get("infcode"), b.get("result")), (kind, b)
        if kind == "soap":
            assert b'typeCode="AA"' in before.body and b'typeCode="AA"' in after.body
