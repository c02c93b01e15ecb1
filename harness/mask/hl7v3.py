"""XML masked by XPath: 互联互通 HL7 v3 messages, bare or inside a SOAP envelope, and CDA documents.

Documents are parsed by `harness.safexml` (no DTD, no entity, no network) and written back by lxml, so
they stay well-formed with every namespace declaration where it was. An HL7 v3 message carried as text
in a SOAP element (`HIPMessageServer/message`, usually CDATA) is parsed, masked and put back the way it
came (CDATA stays CDATA); the envelope itself is masked too, for services that carry the message as
elements. The XML declaration is kept byte for byte, and the document keeps its encoding.

What a rule selects is masked by its kind: an attribute or text value as the rule says (`tel:` URIs
keep their scheme); a `name` element's `part`s (FAM then GIV, or one part with the whole name) or text
as one name; an `addr` element's street parts (AL, STR, HNR, ...; STA, CTY, CNT, ZIP kept) or text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from lxml import etree

from harness import safexml
from harness.mask.error import MaskError
from harness.mask.policy import Rule
from harness.mask.sweep import Replacements

if TYPE_CHECKING:  # annotations only: importing the masker at run time would be a cycle
    from harness.mask.masker import Pass

ADDRESS_KEPT_PARTS = frozenset({"STA", "CTY", "CNT", "CPA", "ZIP", "CEN", "PRE"})
"""HL7 v3 address part types kept: state, city, country, county, postal code, census tract, precinct."""
_TEXT_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>[ \t\r\n]*")
_ENCODING = re.compile(r"""encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
CARRIERS = ("message", "Message", "HIPMessageServerResult", "return", "result", "request", "response")
"""Elements whose text may be a whole HL7 v3 document (the 互联互通 HIPMessageServer and its variants)."""


class MaskedXml:
    """A parsed document with its elements masked; `render` sweeps it and writes it back."""

    def __init__(
        self, root: etree._Element, prolog: bytes | str, epilog: bytes | str, encoding: str, inner: list
    ):
        self.root = root
        self.prolog = prolog
        """Everything before the root element (declaration, comments, whitespace) as written."""
        self.epilog = epilog
        """The whitespace after the last node, as written."""
        self.encoding = encoding
        self.inner = inner
        """(carrier element, MaskedXml of the document in its text, whether it was CDATA)."""

    def render(self, replacements: Replacements) -> bytes | str:
        for carrier, document, cdata in self.inner:
            text = document.render(replacements)
            carrier.text = etree.CDATA(text) if cdata else text
        if replacements:
            _sweep(self.root, replacements, {id(c) for c, _, _ in self.inner})
        nodes = [self.root, *self.root.itersiblings()]
        if isinstance(self.prolog, str):
            body = "".join(etree.tostring(n, encoding="unicode", with_tail=False) for n in nodes)
            return self.prolog + body + self.epilog
        body = b"".join(
            etree.tostring(n, encoding=self.encoding, xml_declaration=False, with_tail=False) for n in nodes
        )
        return self.prolog + body + self.epilog


def mask(
    data: bytes | str, pass_: Pass, rules: Sequence[Rule], namespaces: dict[str, str], *, depth: int = 0
) -> MaskedXml:
    """Mask an XML document (bytes, or text such as the content of a SOAP `message` element)."""
    if isinstance(data, str):
        m = _TEXT_DECLARATION.match(data)
        raw = data[m.end() if m else 0 :].encode("utf-8")  # the declaration's encoding no longer applies
        text = data
        encoding = "unicode"
    else:
        raw = data
        text = data.decode("latin-1")  # only to find where the root starts: markup is ASCII
        m = _TEXT_DECLARATION.match(text.lstrip("\ufeff\u00ef\u00bb\u00bf"))
        enc = _ENCODING.search(m.group(0)) if m else None
        encoding = enc.group(1) if enc else "UTF-8"
    try:
        root = safexml.parse(raw)
    except ValueError as exc:
        raise MaskError(f"not readable XML: {exc}") from None
    start = _root_start(text)
    stripped = text.rstrip()
    prolog, epilog = data[:start], data[len(stripped) :]
    inner = _carried(root, pass_, rules, namespaces, depth, raw) if depth < 2 else []
    _mask_tree(root, pass_, rules, namespaces)
    return MaskedXml(root, prolog, epilog, encoding, inner)


def _root_start(text: str) -> int:
    """Where the root element's start tag begins: after the declaration, comments and PIs."""
    pos = 0
    while True:
        while pos < len(text) and (text[pos].isspace() or text[pos] in "\ufeff\u00ef\u00bb\u00bf"):
            pos += 1
        if text.startswith("<?", pos):
            pos = text.index("?>", pos) + 2
        elif text.startswith("<!--", pos):
            pos = text.index("-->", pos) + 3
        else:
            return pos


def _carried(root, pass_: Pass, rules, namespaces, depth: int, raw: bytes) -> list:
    """The documents carried as text inside SOAP elements, each masked on its own."""
    out = []
    for element in root.iter():
        if not isinstance(element.tag, str) or len(element) or safexml.local_name(element) not in CARRIERS:
            continue
        text = element.text or ""
        if not text.lstrip().startswith("<"):
            continue
        document = mask(text, pass_, rules, namespaces, depth=depth + 1)
        out.append((element, document, b"<![CDATA[" in raw))
    return out


def _mask_tree(root: etree._Element, pass_: Pass, rules: Sequence[Rule], namespaces: dict[str, str]) -> None:
    selected = []
    for rule in rules:
        if rule.how == "keep":
            continue
        try:
            found = etree.XPath(rule.target, namespaces=namespaces)(root)
        except etree.XPathError as exc:
            raise MaskError(f"XPath {rule.target} ({rule.where}): {exc}") from None
        for node in found if isinstance(found, list) else []:
            selected.append((rule, node))
    ids = [str(node) for rule, node in selected if rule.how == "id" and _is_value(node)]
    pass_.patient = pass_.choose_patient(ids)
    try:
        for rule, node in selected:
            _apply(pass_, rule, node)
    finally:
        pass_.patient = None


def _is_value(node) -> bool:
    return isinstance(node, str) and getattr(node, "is_attribute", False) or getattr(node, "is_text", False)


def _apply(pass_: Pass, rule: Rule, node) -> None:
    if isinstance(node, str):  # an attribute or a text node ("smart string")
        parent = node.getparent()
        if parent is None:
            return
        masked = pass_.value(rule.how, str(node), precision=rule.precision)
        if getattr(node, "is_attribute", False):
            parent.set(node.attrname, masked)
        elif getattr(node, "is_tail", False):
            parent.tail = masked
        elif getattr(node, "is_text", False):
            parent.text = masked
        return
    if not isinstance(node, etree._Element):
        return
    if rule.how == "name":
        _name(pass_, node)
    elif rule.how == "address":
        _address(pass_, node)
    else:
        _values(pass_, node, rule.how, rule.precision)


def _parts(element: etree._Element) -> list[etree._Element]:
    return [e for e in element.iter() if isinstance(e.tag, str) and safexml.local_name(e) == "part"]


def _name(pass_: Pass, element: etree._Element) -> None:
    items = [e for e in element if isinstance(e.tag, str) and safexml.local_name(e) == "item"] or [element]
    for item in items:
        parts = _parts(item)
        if parts:
            ordered = sorted(parts, key=lambda p: {"FAM": 0, "GIV": 1}.get(p.get("type") or "", 2))
            named = [p for p in ordered if p.get("type") in (None, "FAM", "GIV") and p.get("value")]
            masked = pass_.name([p.get("value") for p in named])
            for part, value in zip(named, masked, strict=True):
                part.set("value", value)
        elif item.text and item.text.strip():
            item.text = pass_.name([item.text])[0]
        for child in item:  # <family>/<given> children (CDA)
            if isinstance(child.tag, str) and child.text and child.text.strip():
                child.text = pass_.name([child.text])[0]


def _address(pass_: Pass, element: etree._Element) -> None:
    parts = _parts(element)
    if parts:
        for part in parts:
            if (part.get("type") or "") not in ADDRESS_KEPT_PARTS and part.get("value"):
                part.set("value", pass_.value("address", part.get("value")))
        return
    for node in element.iter():
        if not isinstance(node.tag, str):
            continue
        local = safexml.local_name(node)
        if local in ("state", "city", "county", "country", "postalCode", "censusTract", "precinct"):
            continue
        if node.text and node.text.strip():
            node.text = pass_.value("address", node.text)


def _values(pass_: Pass, element: etree._Element, how: str, precision: str | None) -> None:
    """Every value in an element: its `value`/`extension` attributes and its text."""
    for node in element.iter():
        if not isinstance(node.tag, str):
            continue
        for attr in ("value", "extension"):
            if node.get(attr):
                node.set(attr, pass_.value(how, node.get(attr), precision=precision))
        if node.text and node.text.strip():
            node.text = pass_.value(how, node.text, precision=precision)


def _sweep(root: etree._Element, replacements: Replacements, skip: set[int]) -> None:
    for node in root.iter():
        if not isinstance(node.tag, str):
            continue
        if node.text and id(node) not in skip:
            swept = replacements.sweep(node.text)
            if swept != node.text:
                node.text = swept
        if node.tail:
            swept = replacements.sweep(node.tail)
            if swept != node.tail:
                node.tail = swept
        for name, value in node.attrib.items():
            swept = replacements.sweep(value)
            if swept != value:
                node.set(name, swept)
