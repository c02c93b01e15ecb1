"""Hardened XML parsing for everything that reads XML off the wire.

SOAP forbids DTDs, and a DTD is where both the billion-laughs bomb and external entities (XXE) live, so a
document that declares one is refused before libxml2 sees it; the parser itself is also set never to load a
DTD,
resolve an entity or touch the network, in case a declaration hides where a byte search cannot see it.
"""

from __future__ import annotations

from lxml import etree

MAX_XML_BYTES = 10 * 1024 * 1024


class UnsafeXMLError(ValueError):
    """The document declares a DTD or entity, or is too large, and was not parsed."""


class XMLSyntaxError(ValueError):
    """The document is not well-formed XML; the message gives line and column."""


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_blank_text=False,
    )


_PARSER = _parser()


def parse(data: bytes, *, max_bytes: int = MAX_XML_BYTES) -> etree._Element:
    """Parse untrusted XML bytes into an element; raises UnsafeXMLError or XMLSyntaxError."""
    if len(data) > max_bytes:
        raise UnsafeXMLError(f"XML document of {len(data)} bytes exceeds the limit of {max_bytes} bytes")
    head = data.lstrip()[:1]
    if head and head not in (b"<", b"\xef", b"\xff", b"\xfe"):
        raise XMLSyntaxError(f"not XML: starts with {data[:20]!r}")
    upper = data.upper()
    doctype = upper.find(b"<!DOCTYPE")
    if doctype >= 0:
        raise UnsafeXMLError(f"XML document declares a DTD at byte {doctype}: DTDs and entities are refused")
    entity = upper.find(b"<!ENTITY")
    if entity >= 0:
        raise UnsafeXMLError(f"XML document declares an entity at byte {entity}: entities are refused")
    try:
        root = etree.fromstring(data, parser=_PARSER)
    except etree.XMLSyntaxError as exc:
        raise XMLSyntaxError(f"malformed XML: {exc}") from None
    if root is None:
        raise XMLSyntaxError("empty XML document")
    if root.getroottree().docinfo.doctype:
        raise UnsafeXMLError("XML document declares a DTD: DTDs and entities are refused")
    return root


def local_name(element: etree._Element) -> str:
    """The tag without its namespace ('{urn:hl7-org:v3}id' -> 'id')."""
    tag = element.tag
    if not isinstance(tag, str):
        return ""
    return tag.rpartition("}")[2]
