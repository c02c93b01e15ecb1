from harness import safexml
from harness.codecs import get
from tests.proxy.faults.http.views import decide, soap12, view


def test_soap_fault_in_the_requests_version():
    _, plan = decide({"action": {"type": "soap_fault", "code": "Client", "text": "bad <thing>"}}, soap12())
    assert not plan.forward and plan.reply.status == 500
    root = safexml.parse(plan.reply.body)
    assert root.tag == "{http://www.w3.org/2003/05/soap-envelope}Envelope"
    meta = get("soap").response_meta({}, 500, {}, plan.reply.body)
    assert meta["fault_code"] == "soap:Sender" and meta["fault_string"] == "bad <thing>"
    assert "application/soap+xml" in dict(plan.reply.headers)["Content-Type"]


def test_soap11_request_gets_a_soap11_fault():
    body = (
        b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><op/>'
        b"</soap:Body></soap:Envelope>"
    )
    subject = view(
        "soap", "POST", "/services/HIPMessageServer", body, {"Content-Type": "text/xml", "SOAPAction": "a"}
    )
    _, plan = decide({"action": {"type": "soap_fault"}}, subject)
    meta = get("soap").response_meta({}, 500, {}, plan.reply.body)
    assert meta["soap_version"] == "1.1" and meta["fault_code"] == "soap:Server"
