"""The 互联互通 HIPMessageServer, sans-IO: SOAP 1.1/1.2, a real WSDL, HL7 v3 checks, MCCI acknowledgements.

`HIPMessageServer(action, message)` carries an HL7 v3 document as text (usually CDATA). The service routes
by `action` (specs/hl7v3/interactions.yaml), checks the document's interaction id and required elements,
and answers `HIPMessageServerResult` holding MCCI_IN000002UV01 (AA, or AE with the problems in
acknowledgementDetail/text); PatientInfoQuery answers PRPA_IN201306UV02 from the patients registered so far.

A broken envelope (not XML, a DTD or entity, not SOAP, no operation) is a SOAP Fault; a broken inner
message is an AE, since the transport itself was fine. Every parse goes through harness.safexml, which
refuses DTDs outright, so neither a billion-laughs bomb nor an external entity is ever expanded.
"""

from __future__ import annotations

import re
import uuid
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import yaml
from lxml import etree

from harness import safexml
from harness.simulators.wire import HttpRequest, HttpResponse

SPEC = Path(__file__).resolve().parents[2] / "specs" / "hl7v3" / "interactions.yaml"
SERVICE_PATH = "/services/HIPMessageServer"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
HL7 = "urn:hl7-org:v3"
NS = {"hl7": HL7}
SOAP_ACTION = "urn:hl7-org:v3/HIPMessageServer"
CONTENT_TYPES = {"1.1": "text/xml; charset=utf-8", "1.2": "application/soap+xml; charset=utf-8"}


class SoapFault(Exception):
    def __init__(self, reason: str, *, sender: bool = True, version: str = "1.1", status: int | None = None):
        super().__init__(reason)
        self.reason = reason
        self.sender = sender
        self.version = version
        self.status = status


def _now() -> datetime:
    return datetime.now()


class HipMessageServer:
    name = "soap"

    def __init__(
        self,
        spec_path: Path = SPEC,
        *,
        clock: Callable[[], datetime] = _now,
        max_patients: int = 10_000,
        device_id: str = "HIP",
    ) -> None:
        self.spec = yaml.safe_load(spec_path.read_text(encoding="utf-8"))
        self.clock = clock
        self.device_id = device_id
        self.oids = self.spec["oids"]
        self.patients: OrderedDict[str, str] = OrderedDict()  # patient id extension -> patient element XML
        self.max_patients = max_patients
        self._common = [
            (etree.XPath(r["xpath"], namespaces=NS), r["what"]) for r in self.spec["common_required"]
        ]
        self._required = {
            action: [(etree.XPath(r["xpath"], namespaces=NS), r["what"]) for r in body.get("required", [])]
            for action, body in self.spec["actions"].items()
        }

    # ----------------------------------------------------------------- HTTP
    def handle(self, request: HttpRequest) -> HttpResponse:
        if request.path.rstrip("/") != SERVICE_PATH:
            return HttpResponse(
                404,
                {"Content-Type": "text/plain; charset=utf-8"},
                f"no service at {request.path}; the service is {SERVICE_PATH}".encode(),
            )
        if request.method == "GET":
            if any(k.lower() == "wsdl" for k, _ in request.params()):
                host = request.header("host") or "localhost"
                return HttpResponse(
                    200, {"Content-Type": "text/xml; charset=utf-8"}, wsdl(f"http://{host}").encode()
                )
            return HttpResponse(
                200,
                {"Content-Type": "text/plain; charset=utf-8"},
                f"HIPMessageServer: POST SOAP 1.1 or 1.2 here; WSDL at {SERVICE_PATH}?wsdl".encode(),
            )
        if request.method != "POST":
            return HttpResponse(
                405,
                {"Allow": "GET, POST", "Content-Type": "text/plain; charset=utf-8"},
                b"use POST for SOAP requests or GET ?wsdl",
            )
        version = "1.1"
        try:
            version = self._version(request)
            action, message = self._operation(request.body, version)
            result = self.service(action, message)
            return self._envelope_response(version, result)
        except SoapFault as fault:
            return self.fault_response(
                fault.reason, version=fault.version or version, sender=fault.sender, status=fault.status
            )

    def too_large(self, request: HttpRequest, limit: int) -> HttpResponse:
        ctype = (request.header("content-type") or "").lower()
        version = "1.2" if ctype.startswith("application/soap+xml") else "1.1"
        return self.fault_response(
            f"request body is larger than the {limit}-byte limit", version=version, status=413
        )

    @staticmethod
    def _version(request: HttpRequest) -> str:
        ctype = (request.header("content-type") or "").split(";")[0].strip().lower()
        if ctype == "application/soap+xml":
            return "1.2"
        if ctype == "text/xml":
            if request.header("soapaction") is None:
                raise SoapFault("SOAPAction header missing: SOAP 1.1 over HTTP requires it", version="1.1")
            return "1.1"
        raise SoapFault(
            f"Content-Type {ctype or '(none)'} is not SOAP: use text/xml (1.1) or application/soap+xml (1.2)",
            status=415,
        )

    def _operation(self, body: bytes, version: str) -> tuple[str, etree._Element | str]:
        try:
            root = safexml.parse(body)
        except safexml.UnsafeXMLError as exc:
            raise SoapFault(f"refused: {exc}", version=version) from None
        except safexml.XMLSyntaxError as exc:
            raise SoapFault(f"request is not well-formed XML: {exc}", version=version) from None
        ns = etree.QName(root).namespace
        if safexml.local_name(root) != "Envelope" or ns not in (SOAP11, SOAP12):
            raise SoapFault(f"root element {root.tag} is not a SOAP Envelope", version=version)
        actual = "1.1" if ns == SOAP11 else "1.2"
        if actual != version:
            raise SoapFault(
                f"SOAP {actual} envelope sent with the SOAP {version} Content-Type",
                version=version,
                status=500 if version == "1.1" else 400,
            )
        body_el = root.find(f"{{{ns}}}Body")
        if body_el is None or not len(body_el):
            raise SoapFault("SOAP Body is missing or empty", version=version)
        op = body_el[0]
        if safexml.local_name(op) != "HIPMessageServer":
            raise SoapFault(
                f"unknown operation {safexml.local_name(op)!r}; the service has HIPMessageServer",
                version=version,
            )
        action_el = _child(op, "action")
        message_el = _child(op, "message")
        if action_el is None or not (action_el.text or "").strip():
            raise SoapFault("HIPMessageServer/action is missing or empty", version=version)
        if message_el is None:
            raise SoapFault("HIPMessageServer/message is missing", version=version)
        message: etree._Element | str = message_el[0] if len(message_el) else (message_el.text or "")
        return action_el.text.strip(), message

    # ------------------------------------------------------------- service
    def service(self, action: str, message: etree._Element | str) -> str:
        """Handle one call; returns the HL7 v3 response document (MCCI or PRPA_IN201306UV02) as text."""
        spec = self.spec["actions"].get(action)
        if isinstance(message, str):
            text = message.strip()
            if not text:
                return self._ack(None, "AE", [f"action {action}: message is empty"])
            # The text is already decoded: drop its XML declaration so a declared encoding cannot mislead.
            text = re.sub(r"^<\?xml[^>]*\?>", "", text).lstrip()
            try:
                doc = safexml.parse(text.encode("utf-8"))
            except (safexml.UnsafeXMLError, safexml.XMLSyntaxError) as exc:
                return self._ack(None, "AE", [f"message is not an acceptable XML document: {exc}"])
        else:
            doc = message
        if spec is None:
            known = ", ".join(self.spec["actions"])
            return self._ack(doc, "AE", [f"unknown action {action!r}; known actions: {known}"])
        problems = self.check(action, doc)
        if problems:
            return self._ack(doc, "AE", problems)
        effect = spec.get("effect")
        if effect == "query":
            return self._query(doc)
        if effect in ("register", "update", "merge"):
            problem = getattr(self, f"_{effect}")(doc)
            if problem:
                return self._ack(doc, "AE", [problem])
        return self._ack(doc, "AA", [f"{action} accepted"])

    def check(self, action: str, doc: etree._Element) -> list[str]:
        """Problems with an HL7 v3 document for `action`: interaction id, wrapper and payload elements."""
        spec = self.spec["actions"][action]
        expected = spec["interaction"]
        problems = []
        if etree.QName(doc).namespace != HL7:
            problems.append(f"root element {doc.tag} is not in the HL7 v3 namespace {HL7}")
        root_name = safexml.local_name(doc)
        if root_name != expected:
            problems.append(
                f"action {action} expects {expected}, but the message root element is {root_name}"
            )
        interaction = doc.find("hl7:interactionId", NS)
        ext = interaction.get("extension") if interaction is not None else None
        if ext and ext != expected:
            problems.append(f"interactionId@extension is {ext}, but action {action} expects {expected}")
        for xpath, what in self._common + self._required[action]:
            if not xpath(doc):
                problems.append(f"missing {what}")
        return problems

    # ------------------------------------------------------------- patients
    def _patient_id(
        self, doc: etree._Element, xpath: str = "hl7:controlActProcess//hl7:patient/hl7:id"
    ) -> str:
        for el in doc.xpath(xpath, namespaces=NS):
            for candidate in [el, *el.findall("hl7:item", NS)]:
                if (candidate.get("extension") or "").strip():
                    return candidate.get("extension").strip()
        return ""

    def _register(self, doc: etree._Element) -> str | None:
        pid = self._patient_id(doc)
        if pid in self.patients:
            return f"patient {pid} is already registered; use PatientInfoUpdate"
        self._keep(pid, doc)
        return None

    def _update(self, doc: etree._Element) -> str | None:
        pid = self._patient_id(doc)
        if pid not in self.patients:
            return f"patient {pid} is not registered; use PatientInfoRegister"
        self._keep(pid, doc)
        return None

    def _merge(self, doc: etree._Element) -> str | None:
        pid = self._patient_id(doc)
        old = self._patient_id(doc, "hl7:controlActProcess//hl7:priorRegisteredRole/hl7:id")
        missing = [p for p in (pid, old) if p not in self.patients]
        if missing:
            return f"patient {', '.join(missing)} is not registered; both must exist to merge"
        if pid == old:
            return f"cannot merge patient {pid} into itself"
        del self.patients[old]
        return None

    def _keep(self, pid: str, doc: etree._Element) -> None:
        patient = doc.xpath("hl7:controlActProcess//hl7:patient", namespaces=NS)
        self.patients[pid] = etree.tostring(patient[0], encoding="unicode") if patient else ""
        self.patients.move_to_end(pid)
        while len(self.patients) > self.max_patients:
            self.patients.popitem(last=False)

    # ------------------------------------------------------------ responses
    def _wrapper(self, doc: etree._Element | None, interaction: str) -> tuple[str, str]:
        """The transmission wrapper of a response (id, time, interaction, receiver = the request's sender)."""
        sender = ""
        if doc is not None:
            ids = doc.xpath("hl7:sender/hl7:device/hl7:id", namespaces=NS)
            for el in ids[:1]:
                item = el.find("hl7:item", NS)
                sender = (item if item is not None else el).get("extension") or ""
        now = self.clock()
        head = (
            f'<id root="{self.oids["message_id"]}" extension="{uuid.uuid4()}"/>'
            f'<creationTime value="{now:%Y%m%d%H%M%S}"/>'
            f'<interactionId root="{self.oids["interaction_id"]}" extension="{interaction}"/>'
            '<processingCode code="P"/><processingModeCode/><acceptAckCode code="AL"/>'
            f'<receiver typeCode="RCV"><device classCode="DEV" determinerCode="INSTANCE"><id><item '
            f'root="{self.oids["device_id"]}" extension={quoteattr(sender)}/></id></device></receiver>'
            f'<sender typeCode="SND"><device classCode="DEV" determinerCode="INSTANCE"><id><item '
            f'root="{self.oids["device_id"]}" extension={quoteattr(self.device_id)}/></id></device></sender>'
        )
        target = ""
        if doc is not None:
            msg_id = doc.find("hl7:id", NS)
            if msg_id is not None:
                target = (
                    f"<targetMessage><id root={quoteattr(msg_id.get('root') or '')} "
                    f"extension={quoteattr(msg_id.get('extension') or '')}/></targetMessage>"
                )
        return head, target

    def _acknowledgement(self, code: str, texts: list[str], target: str) -> str:
        details = "".join(
            f"<acknowledgementDetail><text value={quoteattr(t)}/></acknowledgementDetail>" for t in texts
        )
        return f'<acknowledgement typeCode="{code}">{target}{details}</acknowledgement>'

    def _ack(self, doc: etree._Element | None, code: str, texts: list[str]) -> str:
        head, target = self._wrapper(doc, "MCCI_IN000002UV01")
        return (
            f'<MCCI_IN000002UV01 xmlns="{HL7}" ITSVersion="XML_1.0">{head}'
            f"{self._acknowledgement(code, texts, target)}</MCCI_IN000002UV01>"
        )

    def _query(self, doc: etree._Element) -> str:
        values = doc.xpath(
            "hl7:controlActProcess/hl7:queryByParameter//hl7:value[normalize-space(@extension)]",
            namespaces=NS,
        )
        pid = values[0].get("extension").strip()
        head, target = self._wrapper(doc, "PRPA_IN201306UV02")
        found = self.patients.get(pid)
        query = doc.find("hl7:controlActProcess/hl7:queryByParameter", NS)
        query_xml = etree.tostring(query, encoding="unicode") if query is not None else ""
        if found is None:
            ack = self._acknowledgement("AE", [f"no patient with id {pid}"], target)
            subject, response_code = "", "NF"
        else:
            ack = self._acknowledgement("AA", ["found 1 patient"], target)
            subject = (
                f'<subject typeCode="SUBJ"><registrationEvent classCode="REG" moodCode="EVN">'
                f'<statusCode code="active"/><subject1 typeCode="SBJ">{found}</subject1>'
                f"</registrationEvent></subject>"
            )
            response_code = "OK"
        return (
            f'<PRPA_IN201306UV02 xmlns="{HL7}" ITSVersion="XML_1.0">{head}{ack}'
            f'<controlActProcess classCode="CACT" moodCode="EVN">{subject}'
            f'<queryAck><queryResponseCode code="{response_code}"/></queryAck>{query_xml}'
            f"</controlActProcess></PRPA_IN201306UV02>"
        )

    @staticmethod
    def _envelope_response(version: str, result: str) -> HttpResponse:
        ns = SOAP11 if version == "1.1" else SOAP12
        payload = f"<![CDATA[{result}]]>" if "]]>" not in result else escape(result)
        body = (
            f'<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="{ns}"><soap:Body>'
            f'<HIPMessageServerResponse xmlns="{HL7}"><HIPMessageServerResult xmlns="">{payload}'
            f"</HIPMessageServerResult></HIPMessageServerResponse></soap:Body></soap:Envelope>"
        )
        return HttpResponse(200, {"Content-Type": CONTENT_TYPES[version]}, body.encode("utf-8"))

    @staticmethod
    def fault_response(
        reason: str, *, version: str = "1.1", sender: bool = True, status: int | None = None
    ) -> HttpResponse:
        if version == "1.2":
            code = "soap:Sender" if sender else "soap:Receiver"
            fault = (
                f"<soap:Fault><soap:Code><soap:Value>{code}</soap:Value></soap:Code><soap:Reason>"
                f'<soap:Text xml:lang="en">{escape(reason)}</soap:Text></soap:Reason></soap:Fault>'
            )
            ns, default_status = SOAP12, 400 if sender else 500
        else:
            code = "soap:Client" if sender else "soap:Server"
            fault = (
                f"<soap:Fault><faultcode>{code}</faultcode><faultstring>{escape(reason)}</faultstring>"
                "</soap:Fault>"
            )
            ns, default_status = SOAP11, 500
        body = (
            f'<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="{ns}"><soap:Body>{fault}'
            "</soap:Body></soap:Envelope>"
        )
        return HttpResponse(
            status or default_status, {"Content-Type": CONTENT_TYPES[version]}, body.encode("utf-8")
        )


def _child(parent: etree._Element, name: str) -> etree._Element | None:
    for child in parent:
        if safexml.local_name(child) == name:
            return child
    return None


def wsdl(base_url: str) -> str:
    """The service description: document/literal, one operation, SOAP 1.1 and 1.2 ports at base_url."""
    location = escape(f"{base_url}{SERVICE_PATH}", {'"': "&quot;"})
    ops: list[Any] = []
    for prefix, binding in (("soap", "HIPMessageServerSoap"), ("soap12", "HIPMessageServerSoap12")):
        ops.append(
            f'<wsdl:binding name="{binding}" type="tns:HIPMessageServerSoap">'
            f'<{prefix}:binding transport="http://schemas.xmlsoap.org/soap/http"/>'
            f'<wsdl:operation name="HIPMessageServer">'
            f'<{prefix}:operation soapAction="{SOAP_ACTION}" style="document"/>'
            f'<wsdl:input><{prefix}:body use="literal"/></wsdl:input>'
            f'<wsdl:output><{prefix}:body use="literal"/></wsdl:output>'
            f"</wsdl:operation></wsdl:binding>"
        )
    return f"""<?xml version="1.0" encoding="utf-8"?>
<wsdl:definitions xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/" xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"
    xmlns:soap12="http://schemas.xmlsoap.org/wsdl/soap12/" xmlns:xs="http://www.w3.org/2001/XMLSchema"
    xmlns:tns="{HL7}" targetNamespace="{HL7}" name="HIPMessageServer">
  <wsdl:documentation>互联互通 HIPMessageServer: action names the service, message carries the HL7 v3
  document; the result is the HL7 v3 response document (MCCI_IN000002UV01 or the query response).
  </wsdl:documentation>
  <wsdl:types>
    <xs:schema targetNamespace="{HL7}" elementFormDefault="unqualified">
      <xs:element name="HIPMessageServer">
        <xs:complexType><xs:sequence>
          <xs:element name="action" type="xs:string" minOccurs="0"/>
          <xs:element name="message" type="xs:string" minOccurs="0"/>
        </xs:sequence></xs:complexType>
      </xs:element>
      <xs:element name="HIPMessageServerResponse">
        <xs:complexType><xs:sequence>
          <xs:element name="HIPMessageServerResult" type="xs:string" minOccurs="0"/>
        </xs:sequence></xs:complexType>
      </xs:element>
    </xs:schema>
  </wsdl:types>
  <wsdl:message name="HIPMessageServerSoapIn">
    <wsdl:part name="parameters" element="tns:HIPMessageServer"/>
  </wsdl:message>
  <wsdl:message name="HIPMessageServerSoapOut">
    <wsdl:part name="parameters" element="tns:HIPMessageServerResponse"/>
  </wsdl:message>
  <wsdl:portType name="HIPMessageServerSoap">
    <wsdl:operation name="HIPMessageServer">
      <wsdl:input message="tns:HIPMessageServerSoapIn"/>
      <wsdl:output message="tns:HIPMessageServerSoapOut"/>
    </wsdl:operation>
  </wsdl:portType>
  {ops[0]}
  {ops[1]}
  <wsdl:service name="HIPMessageServer">
    <wsdl:port name="HIPMessageServerSoap" binding="tns:HIPMessageServerSoap">
      <soap:address location="{location}"/>
    </wsdl:port>
    <wsdl:port name="HIPMessageServerSoap12" binding="tns:HIPMessageServerSoap12">
      <soap12:address location="{location}"/>
    </wsdl:port>
  </wsdl:service>
</wsdl:definitions>
"""
