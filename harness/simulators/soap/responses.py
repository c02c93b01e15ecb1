"""The 互联互通 HIPMessageServer's HTTP and SOAP surface (moto's responses.py), sans-IO.

`HIPMessageServer(action, message)` carries an HL7 v3 document as text (usually CDATA). The action picks
its spec (specs/hl7v3/services.yaml: all 69 actions of the standard); the document is checked (root and
interactionId, the 测评 wrapper, the action's required elements), then the action's registry op runs:
add, update, upsert, merge, or query, which answers from what was registered. The result, in
`HIPMessageServerResult`, is MCCI_IN000002UV01 (AA, or AE with one acknowledgementDetail per problem)
or the action's query response.

A broken envelope (not XML, a DTD or entity, not SOAP, no operation) is a SOAP Fault; a broken inner
message is an AE, since the transport itself was fine. Every parse goes through harness.safexml, which
refuses DTDs outright, so neither a billion-laughs bomb nor an external entity is ever expanded.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from lxml import etree

from harness import safexml
from harness.simulators.soap import documents
from harness.simulators.soap.registries import Entry, Registries
from harness.simulators.wire import HttpRequest, HttpResponse
from harness.spec.hl7v3.checks import check as check_document
from harness.spec.hl7v3.model import HL7, NS, SPEC, Action, load

SERVICE_PATH = "/services/HIPMessageServer"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
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
        max_entries: int = 10_000,
        device_id: str = "HIP0001",
    ) -> None:
        self.spec = load(spec_path)
        self.clock = clock
        self.device_id = device_id
        self.registries = Registries(max_entries)

    @property
    def patients(self) -> dict[str, Entry]:
        return self.registries.of("patients")

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
        """Handle one call; returns the HL7 v3 response document (MCCI or the query response) as text."""
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
        spec = self.spec.actions.get(action)
        if spec is None:
            known = ", ".join(self.spec.actions)
            return self._ack(
                doc, "AE", [f"unknown action {action!r}; the {len(self.spec.actions)} actions: {known}"]
            )
        problems = self.check(action, doc)
        if problems:
            return self._ack(doc, "AE", problems)
        if spec.op == "query":
            return self._query(spec, doc)
        problem = self._store(spec, doc)
        if problem:
            return self._ack(doc, "AE", [problem])
        return self._ack(doc, "AA", [f"{action} accepted"])

    def check(self, action: str, doc: etree._Element) -> list[str]:
        """Problems with an HL7 v3 document for `action`: root, interactionId, wrapper and payload."""
        return check_document(self.spec, self.spec.actions[action], doc)

    # ------------------------------------------------------------------------------ registries
    @staticmethod
    def _key(xpath: etree.XPath, doc: etree._Element) -> str:
        for value in xpath(doc):
            if str(value).strip():
                return str(value).strip()
        return ""

    def _store(self, spec: Action, doc: etree._Element) -> str | None:
        key = self._key(spec.key, doc)
        if not key:
            return f"{spec.name}: the identifier ({spec.key.path}) is missing"
        existing = self.registries.get(spec.registry, key)
        kind = spec.registry.rstrip("s")
        if spec.op == "add" and existing is not None:
            return f"{kind} {key} is already registered (by {existing.action}); send the update action"
        if spec.op == "update" and existing is None:
            return f"{kind} {key} is not registered; send the add/register action first"
        if spec.op == "merge":
            prior = self._key(spec.prior, doc) if spec.prior is not None else ""
            missing = [p for p in (key, prior) if not p or self.registries.get(spec.registry, p) is None]
            if missing:
                shown = ", ".join(m or "(none)" for m in missing)
                return f"{kind} {shown} is not registered; both must exist to merge"
            if key == prior:
                return f"cannot merge {kind} {key} into itself"
            self.registries.remove(spec.registry, prior)
            return None
        self.registries.put(spec.registry, Entry(key, self._payload(doc), spec.name))
        return None

    @staticmethod
    def _payload(doc: etree._Element) -> str:
        subject = doc.find("hl7:controlActProcess/hl7:subject", NS)
        parts = [
            etree.tostring(child, encoding="unicode") for child in (subject if subject is not None else [])
        ]
        return "".join(parts)

    # -------------------------------------------------------------------------------- answers
    def _ack(self, doc: etree._Element | None, code: str, texts: list[str]) -> str:
        head, target = documents.wrapper(self.spec.oids, self.device_id, self.clock(), doc, self.spec.ack)
        return documents.ack(self.spec.ack, head, code, texts, target)

    def _query(self, spec: Action, doc: etree._Element) -> str:
        key = self._key(spec.key, doc)
        interaction = spec.response(safexml.local_name(doc))
        head, target = documents.wrapper(self.spec.oids, self.device_id, self.clock(), doc, interaction)
        entry = self.registries.get(spec.registry, key) if key else None
        found = [entry.payload] if entry is not None else []
        return documents.query_response(interaction, head, target, doc, key, found, spec.registry.rstrip("s"))

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
