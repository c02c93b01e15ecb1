import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from harness.simulators.soap import SERVICE_PATH, SOAP11, SOAP12, HipMessageServer
from harness.simulators.wire import HttpRequest
from tests.childproc import start_listening
from tests.hl7v3_acks import NS, ack

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "soap"
SPECS = FIXTURES.parents[1] / "specs"
MESSAGE = (FIXTURES / "PRPA_IN201311UV02.xml").read_text(encoding="utf-8")
H12 = {"content-type": "application/soap+xml; charset=utf-8", "host": "hip.test:8080"}
H11 = {"content-type": "text/xml; charset=utf-8", "soapaction": '"urn:hl7-org:v3/HIPMessageServer"'}

BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
<!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
<!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
<!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
<!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
<!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">]>
<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope"><soap:Body>
<urn:HIPMessageServer xmlns:urn="urn:hl7-org:v3"><action>&lol9;</action><message>x</message>
</urn:HIPMessageServer>
</soap:Body></soap:Envelope>"""


def envelope(action: str, message: str, version: str = "1.2") -> bytes:
    ns = SOAP12 if version == "1.2" else SOAP11
    return (
        f'<soap:Envelope xmlns:soap="{ns}" xmlns:urn="urn:hl7-org:v3"><soap:Body><urn:HIPMessageServer>'
        f"<action>{action}</action><message><![CDATA[{message}]]></message></urn:HIPMessageServer>"
        "</soap:Body></soap:Envelope>"
    ).encode()


def xxe(secret_file: Path) -> bytes:
    return (
        f'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file://{secret_file}">]>'
        f'<soap:Envelope xmlns:soap="{SOAP12}"><soap:Body><urn:HIPMessageServer xmlns:urn="urn:hl7-org:v3">'
        "<action>&xxe;</action><message>&xxe;</message></urn:HIPMessageServer></soap:Body></soap:Envelope>"
    ).encode()


def result_of(body: bytes) -> etree._Element:
    root = etree.fromstring(body)
    text = root.find(".//HIPMessageServerResult").text
    return etree.fromstring(text.encode("utf-8"))


def fault_reason(body: bytes) -> str:
    root = etree.fromstring(body)
    texts = root.xpath("//*[local-name()='faultstring' or local-name()='Text']/text()")
    assert texts, body
    return texts[0]


def post(core, body: bytes, headers=H12):
    return core.handle(HttpRequest("POST", SERVICE_PATH, dict(headers), body))


def edit(message: str, old: str, new: str) -> str:
    assert old in message
    return message.replace(old, new, 1)


@pytest.fixture
def core():
    return HipMessageServer()


def test_register_query_update_merge(core):
    resp = post(core, (FIXTURES / "PatientInfoRegister-soap12.xml").read_bytes())
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("application/soap+xml")
    doc = result_of(resp.body)
    assert etree.QName(doc).localname == "MCCI_IN000002UV01"
    assert doc.find("hl7:interactionId", NS).get("extension") == "MCCI_IN000002UV01"
    assert ack(doc)[0] == "AA"
    target = doc.find("hl7:acknowledgement/hl7:targetMessage/hl7:id", NS).get("extension")
    assert target == "8d2f0c3e-6a0b-4d7e-9b61-0a1f5c2e0001"
    assert doc.find("hl7:receiver/hl7:device/hl7:id/hl7:item", NS).get("extension") == "HIS0001"
    code, texts = ack(result_of(post(core, envelope("PatientInfoRegister", MESSAGE)).body))
    assert code == "AE" and "already registered" in texts[0]

    # The 测评 sample's shape (EMR-PL-04 T01): the patient id in queryByParameter/parameterList/id.
    query = (FIXTURES / "PatientInfoQuery.xml").read_text(encoding="utf-8")
    doc = result_of(post(core, envelope("PatientInfoQuery", query)).body)
    assert etree.QName(doc).localname == "PRPA_IN201306UV02" and ack(doc)[0] == "AA"
    assert (
        doc.xpath("string(//hl7:patientPerson/hl7:name/hl7:item/hl7:part/@value)", namespaces=NS) == "周兰𬌗"
    )
    doc = result_of(
        post(core, envelope("PatientInfoQuery", edit(query, 'extension="P0001234"', 'extension="NOPE"'))).body
    )
    assert ack(doc) == ("AE", ["no patient with id NOPE"])
    assert doc.find(".//hl7:queryResponseCode", NS).get("code") == "NF"

    update = MESSAGE.replace("PRPA_IN201311UV02", "PRPA_IN201314UV02")
    assert ack(result_of(post(core, envelope("PatientInfoUpdate", update)).body))[0] == "AA"
    unknown = edit(update, 'extension="P0001234"', 'extension="P9"')
    code, texts = ack(result_of(post(core, envelope("PatientInfoUpdate", unknown)).body))
    assert code == "AE" and "P9 is not registered" in texts[0]

    second = edit(MESSAGE, 'extension="P0001234"', 'extension="P0005678"')
    assert ack(result_of(post(core, envelope("PatientInfoRegister", second)).body))[0] == "AA"
    merge = (SPECS / "hl7v3" / "examples" / "PatientInfoMerge.xml").read_text(encoding="utf-8")
    assert ack(result_of(post(core, envelope("PatientInfoMerge", merge)).body))[0] == "AA"
    assert "P0005678" not in core.patients and "P0001234" in core.patients


def test_patient_query_with_the_id_only_under_a_value_element_is_refused(core):
    """The old check looked for queryByParameter//value/@extension; the standard's id is parameterList/id."""
    post(core, envelope("PatientInfoRegister", MESSAGE))
    query = (FIXTURES / "PatientInfoQuery.xml").read_text(encoding="utf-8")
    old_shape = edit(query, '<id root="2.16.156.10011.2.5.1.4" extension="P0001234"/>', "")
    old_shape = edit(old_shape, 'extension="53010219850307123X"', 'extension="P0001234"')
    code, texts = ack(result_of(post(core, envelope("PatientInfoQuery", old_shape)).body))
    assert code == "AE" and any("the queried identifier" in t for t in texts)


@pytest.mark.parametrize(
    ("action", "change", "words"),
    [
        ("PatientInfoUpdate", None, ["expects PRPA_IN201314UV02", "root element is PRPA_IN201311UV02"]),
        (
            "PatientInfoRegister",
            ('extension="PRPA_IN201311UV02"', 'extension="PRPA_IN201314UV02"'),
            ["interactionId@extension is PRPA_IN201314UV02"],
        ),
        (
            "PatientInfoRegister",
            ('<creationTime value="20260105093000"/>', ""),
            ["missing creationTime"],
        ),
        ("PatientInfoRegister", ('<sender typeCode="SND">', '<origin typeCode="SND">'), ["sender/device/id"]),
        ("PatientInfoRegister", ('extension="P0001234"', 'extension=""'), ["missing 本地系统的患者ID"]),
        ("PatientInfoRegister", ('extension="8d2f0c3e-6a0b-4d7e-9b61-0a1f5c2e0001"', ""), ["message id"]),
        ("NoSuchAction", None, ["unknown action 'NoSuchAction'", "PatientInfoRegister"]),
    ],
)
def test_ae_names_each_problem(core, action, change, words):
    message = MESSAGE.replace("</sender>", "</origin>", 1) if change and "origin" in change[1] else MESSAGE
    if change:
        message = edit(message, *change)
    code, texts = ack(result_of(post(core, envelope(action, message)).body))
    assert code == "AE"
    joined = " | ".join(texts)
    for word in words:
        assert word in joined
    assert not core.patients


def test_broken_inner_message_is_ae_and_broken_envelope_is_a_fault(core):
    code, texts = ack(result_of(post(core, envelope("PatientInfoRegister", "<PRPA_IN201311UV02><id>")).body))
    assert code == "AE" and "not an acceptable XML document" in texts[0]
    resp = post(core, b"<soap:Envelope xmlns:soap='" + SOAP12.encode() + b"'><soap:Body>")
    assert resp.status == 400 and "not well-formed" in fault_reason(resp.body)
    assert b"soap:Sender" in resp.body
    resp = post(core, envelope("PatientInfoRegister", MESSAGE, "1.1")[:-10], H11)
    assert resp.status == 500 and b"<faultcode>soap:Client</faultcode>" in resp.body
    resp = post(core, envelope("PatientInfoRegister", MESSAGE, "1.1"), {"content-type": "text/xml"})
    assert resp.status == 500 and "SOAPAction header missing" in fault_reason(resp.body)
    resp = post(core, envelope("PatientInfoRegister", MESSAGE, "1.1"), H12)
    assert "SOAP 1.1 envelope sent with the SOAP 1.2 Content-Type" in fault_reason(resp.body)
    resp = post(core, b"{}", {"content-type": "application/json"})
    assert resp.status == 415 and "not SOAP" in fault_reason(resp.body)
    resp = post(core, b"<a/>")
    assert "not a SOAP Envelope" in fault_reason(resp.body)
    resp = post(core, envelope("", MESSAGE))
    assert "action is missing" in fault_reason(resp.body)
    resp = post(core, envelope("PatientInfoRegister", MESSAGE).replace(b"HIPMessageServer", b"Other"))
    assert "unknown operation 'Other'" in fault_reason(resp.body)
    big = core.too_large(HttpRequest("POST", SERVICE_PATH, H12), 1000)
    assert big.status == 413 and "1000-byte limit" in fault_reason(big.body)
    # Still serving.
    assert ack(result_of(post(core, envelope("PatientInfoRegister", MESSAGE)).body))[0] == "AA"


def test_xml_bomb_and_external_entities_are_refused(core, tmp_path):
    resp = post(core, BOMB)
    assert resp.status == 400 and "DTD" in fault_reason(resp.body) and b"lollol" not in resp.body
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-4711")
    for body in (xxe(secret), envelope("PatientInfoRegister", xxe(secret).decode().split("?>", 1)[1])):
        resp = post(core, body)
        assert b"TOP-SECRET-4711" not in resp.body
        assert "DTD" in fault_reason(resp.body)
    # An entity inside the CDATA message (bytes not visible as a DOCTYPE to the envelope) is refused too.
    inner = (
        '<!DOCTYPE x [<!ENTITY e SYSTEM "file://'
        + str(secret)
        + '">]><PRPA_IN201311UV02>&e;</PRPA_IN201311UV02>'
    )
    direct = core.service("PatientInfoRegister", inner)
    assert "TOP-SECRET" not in direct and "DTD" in direct


def test_wsdl_is_a_real_service_description(core):
    resp = core.handle(HttpRequest("GET", SERVICE_PATH + "?wsdl", {"host": "hip.test:8080"}))
    assert resp.status == 200
    root = etree.fromstring(resp.body)
    w = {
        "wsdl": "http://schemas.xmlsoap.org/wsdl/",
        "s11": "http://schemas.xmlsoap.org/wsdl/soap/",
        "s12": "http://schemas.xmlsoap.org/wsdl/soap12/",
    }
    assert root.get("targetNamespace") == "urn:hl7-org:v3"
    assert root.xpath("//s11:address/@location", namespaces=w) == [
        "http://hip.test:8080/services/HIPMessageServer"
    ]
    assert root.xpath("//s12:address/@location", namespaces=w) == [
        "http://hip.test:8080/services/HIPMessageServer"
    ]
    assert root.xpath("//wsdl:portType/wsdl:operation/@name", namespaces=w) == ["HIPMessageServer"]
    evil = core.handle(HttpRequest("GET", SERVICE_PATH + "?WSDL", {"host": 'x"/><injected a="'}))
    etree.fromstring(evil.body)  # still well-formed: the Host header is escaped
    assert core.handle(HttpRequest("GET", "/services/Other?wsdl")).status == 404
    assert core.handle(HttpRequest("PUT", SERVICE_PATH)).status == 405


# ---------------------------------------------------------------- real sockets
@pytest.fixture
def server(processes):
    return start_listening(processes, "mock", "soap", "--listen", "127.0.0.1:0", "--max-body", "200000")


def test_zeep_against_the_wsdl_over_soap_11_and_12(server):
    import zeep
    from zeep.exceptions import Fault

    child, port = server
    wsdl_url = f"http://127.0.0.1:{port}{SERVICE_PATH}?wsdl"
    c11 = zeep.Client(wsdl_url, port_name="HIPMessageServerSoap")
    c12 = zeep.Client(wsdl_url, port_name="HIPMessageServerSoap12")
    doc = etree.fromstring(
        c11.service.HIPMessageServer(action="PatientInfoRegister", message=MESSAGE).encode()
    )
    assert ack(doc)[0] == "AA"
    doc = etree.fromstring(
        c12.service.HIPMessageServer(action="PatientInfoRegister", message=MESSAGE).encode()
    )
    assert ack(doc)[0] == "AE" and "already registered" in ack(doc)[1][0]
    for client in (c11, c12):
        with pytest.raises(Fault) as caught:
            client.service.HIPMessageServer(action="", message=MESSAGE)
        assert "action is missing" in caught.value.message
    child.stop()
    out = child.text()
    assert out.count(f"POST {SERVICE_PATH}") == 4 and out.count("?wsdl") == 2


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed on this machine")
def test_curl_fixture_bomb_xxe_and_oversized(server, tmp_path):
    _, port = server
    url = f"http://127.0.0.1:{port}{SERVICE_PATH}"

    def curl(path: Path, ctype="application/soap+xml; charset=utf-8"):
        done = subprocess.run(
            [
                "curl",
                "-sS",
                "-w",
                "\n%{http_code}",
                "-H",
                f"Content-Type: {ctype}",
                "--data-binary",
                f"@{path}",
                url,
            ],
            capture_output=True,
            timeout=20,
        )
        body, _, code = done.stdout.rpartition(b"\n")
        return int(code), body

    code, body = curl(FIXTURES / "PatientInfoRegister-soap12.xml")
    assert code == 200 and ack(result_of(body))[0] == "AA"
    (tmp_path / "bomb.xml").write_bytes(BOMB)
    code, body = curl(tmp_path / "bomb.xml")
    assert code == 400 and "DTD" in fault_reason(body)
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-4711")
    (tmp_path / "xxe.xml").write_bytes(xxe(secret))
    code, body = curl(tmp_path / "xxe.xml")
    assert code == 400 and b"TOP-SECRET" not in body
    (tmp_path / "big.xml").write_bytes(b"<a>" + b"x" * 300_000 + b"</a>")
    code, body = curl(tmp_path / "big.xml")
    assert code == 413 and "200000-byte limit" in fault_reason(body)
    code, body = curl(FIXTURES / "PatientInfoRegister-soap12.xml")
    assert code == 200 and "already registered" in ack(result_of(body))[1][0]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, 4000), junk=st.binary(max_size=20), inner=st.booleans())
def test_damaged_requests_get_a_soap_answer_never_a_crash(cut, junk, inner):
    core = HipMessageServer()
    if inner:
        message = MESSAGE[: cut % len(MESSAGE)] + junk.decode("latin-1")
        body = envelope("PatientInfoRegister", message.replace("]]>", ""))
    else:
        raw = envelope("PatientInfoRegister", MESSAGE)
        body = raw[: cut % len(raw)] + junk
    resp = post(core, body)
    assert resp.status in (200, 400)
    root = etree.fromstring(resp.body)
    if resp.status == 200:
        assert ack(result_of(resp.body))[0] in ("AA", "AE")
    else:
        assert fault_reason(resp.body) and root is not None


def test_gbk_envelope_is_read_in_its_declared_encoding(core):
    text = (FIXTURES / "PatientInfoRegister-soap12.xml").read_text(encoding="utf-8")
    text = text.replace('encoding="UTF-8"', 'encoding="GBK"', 1).replace("周兰𬌗", "周兰华")
    resp = post(core, text.encode("gbk"), {"content-type": "application/soap+xml; charset=GBK"})
    assert ack(result_of(resp.body))[0] == "AA"
    assert "周兰华" in core.patients["P0001234"].payload
