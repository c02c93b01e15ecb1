"""SOAP metadata: version, action, operation, the HL7 v3 interaction inside, and faults.

The 互联互通 services wrap an HL7 v3 message as text (usually CDATA) in `HIPMessageServer(action, message)`;
the interaction id is read from that inner document (its root element and `interactionId/@extension`), and
a response's MCCI acknowledgement code from `acknowledgement/@typeCode`.
"""

from __future__ import annotations

from collections.abc import Mapping

from lxml import etree

from harness import safexml
from harness.codecs import HttpKind, Meta, header, register

SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
HL7V3 = "urn:hl7-org:v3"


def _content_type_action(content_type: str | None) -> str | None:
    if not content_type:
        return None
    for part in content_type.split(";")[1:]:
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == "action":
            return value.strip().strip('"') or None
    return None


def _body(root: etree._Element) -> tuple[str | None, etree._Element | None]:
    ns = etree.QName(root).namespace if isinstance(root.tag, str) else None
    version = {SOAP11: "1.1", SOAP12: "1.2"}.get(ns or "")
    if version is None or safexml.local_name(root) != "Envelope":
        return None, None
    return version, root.find(f"{{{ns}}}Body")


def _child_text(parent: etree._Element, name: str) -> str | None:
    for child in parent:
        if safexml.local_name(child) == name:
            return (child.text or "").strip() or None
    return None


def _inner_hl7v3(operation: etree._Element, meta: Meta, problems: list[str]) -> None:
    """Read the HL7 v3 document carried in the `message` element (as text or as child elements)."""
    carrier = None
    for child in operation:
        if safexml.local_name(child) in ("message", "Message", "HIPMessageServerResult", "return", "result"):
            carrier = child
            break
    if carrier is None:
        return
    inner = None
    if len(carrier):
        inner = carrier[0]
    elif carrier.text and carrier.text.strip().startswith("<"):
        try:
            inner = safexml.parse(carrier.text.strip().encode("utf-8"))
        except ValueError as exc:
            problems.append(f"HL7 v3 message inside {safexml.local_name(carrier)}: {exc}")
            return
    if inner is None:
        return
    meta["interaction"] = safexml.local_name(inner)
    ns = {"v3": HL7V3}
    ext = inner.xpath("string(v3:interactionId/@extension)", namespaces=ns) or inner.xpath(
        "string(*[local-name()='interactionId']/@extension)"
    )
    if ext:
        meta["interaction_id"] = ext
    type_code = inner.xpath("string(*[local-name()='acknowledgement']/@typeCode)")
    if type_code:
        meta["ack_code"] = type_code
        detail = inner.xpath(
            "string(*[local-name()='acknowledgement']/*[local-name()='acknowledgementDetail']"
            "/*[local-name()='text'])"
        )
        if detail.strip():
            meta["ack_text"] = detail.strip()


def _read(body: bytes, meta: Meta, problems: list[str], what: str) -> etree._Element | None:
    try:
        root = safexml.parse(body)
    except ValueError as exc:
        problems.append(f"{what}: {exc}")
        return None
    version, soap_body = _body(root)
    if version is None:
        problems.append(f"{what} is not a SOAP envelope (root {safexml.local_name(root)!r})")
        return None
    meta["soap_version"] = version
    if soap_body is None or not len(soap_body):
        problems.append(f"{what} has an empty SOAP Body")
        return None
    return soap_body[0]


SOAP_IGNORES = (
    "*#/*/id/@extension", "*#/*/id/@root", "*#/*/creationTime/@value",
)  # fmt: skip


class SoapCodec(HttpKind):
    kind = "soap"
    compare_ignores = SOAP_IGNORES
    fault_actions = ("soap_fault",)

    def read_request(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Meta:
        problems: list[str] = []
        meta: Meta = {}
        action = header(headers, "SOAPAction")
        action = (
            action.strip().strip('"') if action else _content_type_action(header(headers, "Content-Type"))
        )
        if action:
            meta["soap_action"] = action
        if method.upper() == "POST" and body:
            operation = _read(body, meta, problems, "request body")
            if operation is not None:
                meta["operation"] = safexml.local_name(operation)
                hip_action = _child_text(operation, "action")
                if hip_action:
                    meta["action"] = hip_action
                _inner_hl7v3(operation, meta, problems)
        if problems:
            meta["problems"] = problems
        return meta

    def read_response(self, request: Meta, status: int, headers: Mapping[str, str], body: bytes) -> Meta:
        problems: list[str] = []
        meta: Meta = {}
        if body:
            first = _read(body, meta, problems, "response body")
            if first is not None:
                if safexml.local_name(first) == "Fault":
                    meta["fault_code"] = (
                        first.xpath("string(*[local-name()='faultcode'])")
                        or first.xpath("string(*[local-name()='Code']/*[local-name()='Value'])")
                    ).strip() or None
                    meta["fault_string"] = (
                        first.xpath("string(*[local-name()='faultstring'])")
                        or first.xpath("string(*[local-name()='Reason']/*[local-name()='Text'])")
                    ).strip() or None
                else:
                    meta["operation"] = safexml.local_name(first)
                    _inner_hl7v3(first, meta, problems)
        if problems:
            meta["problems"] = problems
        return meta


    def message_type(self, meta: Meta) -> str | None:
        value = (
            meta.get("action") or meta.get("interaction") or meta.get("soap_action") or meta.get("operation")
        )
        return None if value is None else str(value)

    def ack_code(self, status: int | None, meta: Meta) -> str | None:
        if meta.get("fault_code"):
            return str(meta["fault_code"])
        if meta.get("ack_code"):
            return str(meta["ack_code"])
        return super().ack_code(status, meta)

    def accepted(self, status: int, meta: Meta) -> bool:
        if status >= 400 or meta.get("fault_code"):
            return False
        return meta.get("ack_code") in (None, "AA", "CA")


register(SoapCodec())
