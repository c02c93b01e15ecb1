"""What an HL7 v3 request must be for its action: root and interactionId, the 测评 wrapper, the payload.

Each problem is one sentence naming the element, so the AE's acknowledgementDetail texts tell the
sender everything the 测评 would find, not only the first thing.
"""

from __future__ import annotations

from datetime import datetime

from lxml import etree

from harness import safexml
from harness.spec.hl7v3.model import HL7, NS, Action, Check, ServicesSpec


def check(spec: ServicesSpec, action: Action, doc: etree._Element) -> list[str]:
    problems: list[str] = []
    if etree.QName(doc).namespace != HL7:
        problems.append(f"root element {doc.tag} is not in the HL7 v3 namespace {HL7}")
    root = safexml.local_name(doc)
    if root not in action.roots:
        problems.append(
            f"action {action.name} expects the root element {' or '.join(action.roots)}, "
            f"but the message root element is {root}"
        )
    interaction = doc.find("hl7:interactionId", NS)
    ext = (interaction.get("extension") or "").strip() if interaction is not None else ""
    if ext and ext not in action.extensions:
        problems.append(
            f"interactionId@extension is {ext}, but action {action.name} expects "
            f"{' or '.join(action.extensions)}"
        )
    for item in spec.wrapper:
        problems.extend(wrapper_problems(doc, item))
    for item in action.required:
        if not item.xpath(doc):
            problems.append(f"missing {item.what}")
    return problems


def wrapper_problems(doc: etree._Element, item: Check) -> list[str]:
    """What is wrong with one 测评 wrapper element of a request or an answer (empty when nothing)."""
    found = item.xpath(doc)
    if not found:
        return [f"missing {item.what}"]
    problems = []
    for el in found:
        for attr, rule in item.attrs.items():
            value = (el.get(attr) or "").strip()
            problem = _attr_problem(value, rule)
            if problem:
                problems.append(f"{item.what} @{attr}: {problem}")
    return problems


def _attr_problem(value: str, rule: dict) -> str | None:
    if not value:
        return "missing" if rule else None
    if "equals" in rule and value != str(rule["equals"]):
        return f"{value!r} must be {rule['equals']}"
    if "one_of" in rule and value not in [str(v) for v in rule["one_of"]]:
        return f"{value!r} is not one of {', '.join(str(v) for v in rule['one_of'])}"
    if "length" in rule:
        low, high = rule["length"]
        if not low <= len(value) <= high:
            return f"{value!r} is {len(value)} characters; {low}-{high} expected"
    if "format" in rule:
        width = len(datetime(2000, 1, 1).strftime(rule["format"]))  # strptime alone takes 1-digit months
        try:
            valid = len(value) == width and value.isdigit() and datetime.strptime(value, rule["format"])
        except ValueError:
            valid = False
        if not valid:
            return f"{value!r} is not a valid yyyyMMddHHmmss time"
    return None
