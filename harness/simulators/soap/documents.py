"""The HL7 v3 documents the service answers with: MCCI_IN000002UV01 and the query responses.

The ACK follows LangZhongGit H0201Rp element for element; a query response carries the same wrapper, an
acknowledgement, and under controlActProcess the registered payload, a queryAck and the query echoed.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from xml.sax.saxutils import quoteattr

from lxml import etree

from harness.spec.hl7v3.model import HL7, NS


def wrapper(
    oids: dict[str, str], device_id: str, now: datetime, doc: etree._Element | None, interaction: str
) -> tuple[str, str]:
    """The transmission wrapper of a response (receiver = the request's sender) and its targetMessage."""
    sender = ""
    if doc is not None:
        for el in doc.xpath("hl7:sender/hl7:device/hl7:id", namespaces=NS)[:1]:
            item = el.find("hl7:item", NS)
            sender = (item if item is not None else el).get("extension") or ""
    head = (
        f'<id root="{oids["message_id"]}" extension="{uuid.uuid4()}"/>'
        f'<creationTime value="{now:%Y%m%d%H%M%S}"/>'
        f'<interactionId root="{oids["interaction_id"]}" extension="{interaction}"/>'
        '<processingCode code="P"/><processingModeCode/><acceptAckCode code="AL"/>'
        f'<receiver typeCode="RCV"><device classCode="DEV" determinerCode="INSTANCE"><id><item '
        f'root="{oids["device_id"]}" extension={quoteattr(sender)}/></id></device></receiver>'
        f'<sender typeCode="SND"><device classCode="DEV" determinerCode="INSTANCE"><id><item '
        f'root="{oids["device_id"]}" extension={quoteattr(device_id)}/></id></device></sender>'
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


def acknowledgement(code: str, texts: list[str], target: str) -> str:
    details = "".join(
        f"<acknowledgementDetail><text value={quoteattr(t)}/></acknowledgementDetail>" for t in texts
    )
    return f'<acknowledgement typeCode="{code}">{target}{details}</acknowledgement>'


def ack(interaction: str, head: str, code: str, texts: list[str], target: str) -> str:
    return (
        f'<{interaction} xmlns="{HL7}" ITSVersion="XML_1.0">{head}'
        f"{acknowledgement(code, texts, target)}</{interaction}>"
    )


def query_response(
    interaction: str, head: str, target: str, doc: etree._Element, key: str, found: list[str], what: str
) -> str:
    """The answer to a query: OK with the registered payload(s), or AE with queryResponseCode NF."""
    query = doc.find("hl7:controlActProcess/hl7:queryByParameter", NS)
    if query is None:
        query = doc.find("hl7:controlActProcess/hl7:queryByParameterPayload", NS)
    query_xml = etree.tostring(query, encoding="unicode") if query is not None else ""
    if found:
        ackn = acknowledgement("AA", [f"found {len(found)} {what}"], target)
        subjects = "".join(f'<subject typeCode="SUBJ">{payload}</subject>' for payload in found)
        code = "OK"
    else:
        ackn = acknowledgement("AE", [f"no {what} with id {key}"], target)
        subjects, code = "", "NF"
    return (
        f'<{interaction} xmlns="{HL7}" ITSVersion="XML_1.0">{head}{ackn}'
        f'<controlActProcess classCode="CACT" moodCode="EVN">{subjects}'
        f'<queryAck><queryResponseCode code="{code}"/></queryAck>{query_xml}'
        f"</controlActProcess></{interaction}>"
    )
