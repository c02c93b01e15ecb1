from harness import codecs

SOAP = codecs.get("soap")

INNER = (
    '<PRPA_IN201311UV02 xmlns="urn:hl7-org:v3"><id root="2.16.156.10011.2.5.1.1" extension="m1"/>'
    '<interactionId root="2.16.156.10011.2.5.1.2" extension="PRPA_IN201311UV02"/></PRPA_IN201311UV02>'
)
REQ12 = (
    '<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope"><soap:Body>'
    '<urn:HIPMessageServer xmlns:urn="urn:hl7-org:v3"><action>PatientInfoRegister</action>'
    f"<message><![CDATA[{INNER}]]></message></urn:HIPMessageServer></soap:Body></soap:Envelope>"
).encode()


def test_soap12_hip_request():
    meta = SOAP.request_meta(
        "POST",
        "/services/HIPMessageServer",
        {"Content-Type": 'application/soap+xml; charset=utf-8; action="urn:HIP"'},
        REQ12,
    )
    assert meta == {
        "soap_action": "urn:HIP",
        "soap_version": "1.2",
        "operation": "HIPMessageServer",
        "action": "PatientInfoRegister",
        "interaction": "PRPA_IN201311UV02",
        "interaction_id": "PRPA_IN201311UV02",
    }


def test_soap11_action_header():
    body = REQ12.replace(
        b"http://www.w3.org/2003/05/soap-envelope", b"http://schemas.xmlsoap.org/soap/envelope/"
    )
    meta = SOAP.request_meta("POST", "/x", {"SOAPAction": '"urn:hl7-org:v3/HIPMessageServer"'}, body)
    assert meta["soap_version"] == "1.1"
    assert meta["soap_action"] == "urn:hl7-org:v3/HIPMessageServer"


def test_ack_in_response():
    ack = (
        '<MCCI_IN000002UV01 xmlns="urn:hl7-org:v3"><interactionId extension="MCCI_IN000002UV01"/>'
        '<acknowledgement typeCode="AE"><acknowledgementDetail><text>missing patient id</text>'
        "</acknowledgementDetail></acknowledgement></MCCI_IN000002UV01>"
    )
    body = (
        '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body><HIPMessageServerResponse>'
        f"<HIPMessageServerResult><![CDATA[{ack}]]></HIPMessageServerResult>"
        "</HIPMessageServerResponse></s:Body></s:Envelope>"
    ).encode()
    meta = SOAP.response_meta({}, 200, {}, body)
    assert meta["interaction"] == "MCCI_IN000002UV01"
    assert meta["ack_code"] == "AE"
    assert meta["ack_text"] == "missing patient id"


def test_fault_11_and_12():
    f11 = (
        b'<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body><e:Fault>'
        b"<faultcode>e:Client</faultcode><faultstring>bad action</faultstring>"
        b"</e:Fault></e:Body></e:Envelope>"
    )
    f12 = (
        b'<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"><e:Body><e:Fault>'
        b"<e:Code><e:Value>e:Sender</e:Value></e:Code><e:Reason><e:Text>bad</e:Text></e:Reason>"
        b"</e:Fault></e:Body></e:Envelope>"
    )
    assert SOAP.response_meta({}, 500, {}, f11)["fault_code"] == "e:Client"
    assert SOAP.response_meta({}, 500, {}, f11)["fault_string"] == "bad action"
    meta12 = SOAP.response_meta({}, 500, {}, f12)
    assert (meta12["fault_code"], meta12["fault_string"], meta12["soap_version"]) == (
        "e:Sender",
        "bad",
        "1.2",
    )


def test_external_entity_is_a_problem_never_resolved(tmp_path):
    secret = tmp_path / "s.txt"
    secret.write_text("SECRET-VALUE")
    body = f'<!DOCTYPE e [<!ENTITY x SYSTEM "file://{secret}">]><e>&x;</e>'.encode()
    meta = SOAP.request_meta("POST", "/x", {}, body)
    assert "DTD" in meta["problems"][0]
    assert "SECRET-VALUE" not in repr(meta)


def test_not_soap():
    meta = SOAP.request_meta("POST", "/x", {}, b"<html/>")
    assert "not a SOAP envelope" in meta["problems"][0]
