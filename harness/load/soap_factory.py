"""互联互通 HIPMessageServer calls for load: patient registration and query, HL7 v3 inside SOAP.

Each `PatientInfoRegister` carries a PRPA_IN201311UV02 for a new invented patient (a fresh message id,
creation time, patient id, 身份证, name, sex and birth date); `PatientInfoQuery` asks, with a
PRPA_IN201305UV02, for a patient this user registered (a user with none registers one instead). The
request name is the SOAP action, as the proxy's capture records it. A call is accepted when the
HL7 v3 acknowledgement inside the result says AA (CA); AE/AR and SOAP Faults are failures with the
acknowledgement's text or the fault's reason.
"""

from __future__ import annotations

import random
import re
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

from harness.load.ids import ControlIds, new_run_tag
from harness.load.people import People, Person

__all__ = ["ACTIONS", "SoapFactory", "SoapRequest", "answer_failure"]

ACTIONS = ("PatientInfoRegister", "PatientInfoQuery")
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
SOAP_ACTION = "urn:hl7-org:v3/HIPMessageServer"
REASON_MAX = 120

_WRAPPER = (
    '<id root="2.16.156.10011.2.5.1.1" extension="{msg_id}"/>'
    '<creationTime value="{now}"/>'
    '<interactionId root="2.16.156.10011.2.5.1.2" extension="{interaction}"/>'
    '<processingCode code="P"/><processingModeCode/><acceptAckCode code="AL"/>'
    '<receiver typeCode="RCV"><device classCode="DEV" determinerCode="INSTANCE">'
    '<id><item root="2.16.156.10011.2.5.1.3" extension="HIP0001"/></id></device></receiver>'
    '<sender typeCode="SND"><device classCode="DEV" determinerCode="INSTANCE">'
    '<id><item root="2.16.156.10011.2.5.1.3" extension="HIS0001"/></id></device></sender>'
)
_REGISTER = (
    '<PRPA_IN201311UV02 xmlns="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    'ITSVersion="XML_1.0">{wrapper}<controlActProcess classCode="CACT" moodCode="EVN">'
    '<subject typeCode="SUBJ">'
    '<registrationRequest classCode="ACT" moodCode="EVN"><statusCode code="1"/><subject1 typeCode="SUBJ">'
    '<patient classCode="ACT"><id><item root="2.16.156.10011.2.5.1.4" extension={pid}/></id>'
    '<statusCode code="1"/><patientPerson>'
    '<id><item root="2.16.156.10011.1.3" extension={idcard}/></id>'
    '<idCategory code="01" codeSystem="2.16.156.10011.2.3.1.1"><displayName value="居民身份证"/></idCategory>'
    "<name>{name}</name>"
    '<administrativeGenderCode code="{sex}" codeSystem="2.16.156.10011.2.3.3.4"/>'
    '<birthTime value="{birth}"/>'
    '<asOtherIDs classCode="ACT"><id><item root="2.16.156.10011.1.19" extension={card}/></id>'
    '<scopingOrganization classCode="ACT" determinerCode="INSTANCE">'
    '<id><item root="2.16.156.10011.1.5" extension="530102000001"/></id></scopingOrganization></asOtherIDs>'
    "</patientPerson>"
    '<providerOrganization classCode="ACT" determinerCode="INSTANCE">'
    '<id><item root="2.16.156.10011.1.5" extension="530102000001"/></id></providerOrganization>'
    "</patient></subject1>"
    '<author typeCode="SUBJ"><assignedEntity classCode="ACT">'
    '<id><item root="2.16.156.10011.1.4" extension="D0001"/></id></assignedEntity></author>'
    "</registrationRequest></subject></controlActProcess></PRPA_IN201311UV02>"
)
_QUERY = (
    '<PRPA_IN201305UV02 xmlns="urn:hl7-org:v3" ITSVersion="XML_1.0">{wrapper}'
    '<controlActProcess classCode="CACT" moodCode="EVN"><queryByParameter>'
    '<queryId root="2.16.156.10011.2.5.1.1" extension="{msg_id}"/><statusCode code="new"/>'
    '<parameterList><id root="2.16.156.10011.2.5.1.4" extension={pid}/>'
    '<livingSubjectId><value><item root="2.16.156.10011.1.3" extension={idcard}/></value></livingSubjectId>'
    "</parameterList></queryByParameter></controlActProcess></PRPA_IN201305UV02>"
)
_INTERACTION = {"PatientInfoRegister": "PRPA_IN201311UV02", "PatientInfoQuery": "PRPA_IN201305UV02"}


@dataclass(frozen=True, slots=True)
class SoapRequest:
    name: str
    body: bytes
    headers: dict[str, str]
    patient_id: str
    idcard: str = ""


class SoapFactory:
    """Weighted HIPMessageServer calls for one user (SOAP 1.1 or 1.2)."""

    def __init__(
        self,
        weights: Mapping[str, float],
        *,
        new_id: Callable[[], str] | None = None,
        version: str = "1.2",
        seed: int | None = None,
        remember: int = 1000,
    ) -> None:
        unknown = sorted(set(weights) - set(ACTIONS))
        if unknown:
            raise ValueError(f"unknown SOAP action {unknown[0]!r}; known: {', '.join(ACTIONS)}")
        if version not in ("1.1", "1.2"):
            raise ValueError(f"SOAP version {version!r}: expected 1.1 or 1.2")
        self.names = [n for n in weights if weights[n] > 0]
        self.weights = [weights[n] for n in self.names]
        self.version = version
        self.new_id = new_id or ControlIds(new_run_tag()).next
        """Unique ids (patient ids): process-wide when several users share one run."""
        self.rng = random.Random(seed)
        self.people = People(self.rng.randrange(2**32))
        self.registered: deque[tuple[str, str]] = deque(maxlen=remember)
        """(patient id, 身份证) of the patients this user registered."""

    def pick(self, mix: Mapping[str, float] | None = None) -> str:
        if mix:
            names = [n for n in mix if n in ACTIONS]
            if names:
                return self.rng.choices(names, [mix[n] for n in names])[0]
        return self.rng.choices(self.names, self.weights)[0]

    def make(self, name: str | None = None) -> SoapRequest:
        name = name or self.pick()
        if name == "PatientInfoQuery" and not self.registered:
            name = "PatientInfoRegister"
        msg_id = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        wrapper = _WRAPPER.format(
            msg_id=msg_id, now=time.strftime("%Y%m%d%H%M%S"), interaction=_INTERACTION[name]
        )
        if name == "PatientInfoQuery":
            pid, idcard = self.registered[int(self.rng.random() * len(self.registered))]
            document = _QUERY.format(
                wrapper=wrapper, msg_id=msg_id, pid=quoteattr(pid), idcard=quoteattr(idcard)
            )
        else:
            pid = self.new_id()
            person: Person = self.people.new()
            document = _REGISTER.format(
                wrapper=wrapper,
                pid=quoteattr(pid),
                idcard=quoteattr(person.idcard),
                name=escape(person.name),
                card=quoteattr(f"HC{pid}"),
                sex=person.gb_sex,
                birth=person.birth8,
            )
            idcard = person.idcard
        return SoapRequest(name, self._envelope(name, document), self._headers(), pid, idcard)

    def _envelope(self, action: str, document: str) -> bytes:
        ns = SOAP12 if self.version == "1.2" else SOAP11
        return (
            f'<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="{ns}" '
            f'xmlns:urn="urn:hl7-org:v3"><soap:Body><urn:HIPMessageServer><action>{escape(action)}</action>'
            f"<message><![CDATA[{document}]]></message></urn:HIPMessageServer></soap:Body></soap:Envelope>"
        ).encode()

    def _headers(self) -> dict[str, str]:
        if self.version == "1.2":
            return {"Content-Type": f'application/soap+xml; charset=utf-8; action="{SOAP_ACTION}"'}
        return {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{SOAP_ACTION}"'}

    def accepted(self, request: SoapRequest) -> None:
        if request.name == "PatientInfoRegister":
            self.registered.append((request.patient_id, request.idcard))


_ACK = re.compile(r"<acknowledgement\s+typeCode=(?:\"|&quot;)(\w+)")
_ACK_TEXT = re.compile(r"<acknowledgementDetail>\s*<text\s+value=(?:\"|&quot;)([^\"&]*)")
_FAULT = re.compile(r"<(?:\w+:)?(?:faultstring|Text)[^>]*>([^<]*)<")


def answer_failure(status: int, body: bytes) -> str | None:
    """None when the HL7 v3 acknowledgement says AA or CA; else the code and text, or the Fault."""
    text = body.decode("utf-8", "replace")
    if "Fault>" in text or "Fault " in text:
        m = _FAULT.search(text)
        reason = f"SOAP Fault (HTTP {status}): {m.group(1).strip()}" if m else f"SOAP Fault (HTTP {status})"
    elif status >= 300:
        reason = f"HTTP {status}"
    else:
        m = _ACK.search(text)
        if m is None:
            return "no HL7 v3 acknowledgement in the result"
        if m.group(1) in ("AA", "CA"):
            return None
        detail = _ACK_TEXT.search(text)
        reason = f"{m.group(1)}: {detail.group(1)}" if detail else m.group(1)
    reason = " ".join(reason.split())
    return reason if len(reason) <= REASON_MAX else reason[: REASON_MAX - 1] + "…"
