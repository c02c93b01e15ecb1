"""Reading the acknowledgement of an HL7 v3 (互联互通) answer in tests: its typeCode and detail texts."""

from __future__ import annotations

from lxml import etree

NS = {"hl7": "urn:hl7-org:v3"}


def ack(doc: etree._Element) -> tuple[str, list[str]]:
    """(typeCode, [acknowledgementDetail/text/@value, ...]) of the document's acknowledgement."""
    el = doc.find("hl7:acknowledgement", NS)
    return el.get("typeCode"), [t.get("value") for t in el.findall("hl7:acknowledgementDetail/hl7:text", NS)]
