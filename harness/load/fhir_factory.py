"""FHIR R4 requests for load: Patient create, read, search and update for invented people.

Names are the capture's own (`create Patient`, `read Patient`, `search-type Patient`, `update
Patient`: the FHIR interaction and resource type), so load statistics and the proxy's capture line up
type by type. Reads, searches and updates go to patients this user created earlier in the run (a
user that has created none yet creates one instead), as an EMR does with the patients it registered.
"""

from __future__ import annotations

import json
import random
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from harness.load.ids import ControlIds, new_run_tag
from harness.load.people import People, Person

__all__ = ["INTERACTIONS", "FhirFactory", "FhirRequest", "answer_failure"]

INTERACTIONS = ("create Patient", "read Patient", "search-type Patient", "update Patient")
ID_SYSTEM = "urn:oid:2.16.156.10011.1.3"  # 居民身份证号码
MRN_SYSTEM = "urn:oid:2.16.156.10011.2.5.1.4"
CONTENT_TYPE = "application/fhir+json"
REASON_MAX = 120


@dataclass(frozen=True, slots=True)
class FhirRequest:
    name: str
    method: str
    path: str
    body: bytes | None = None
    patient: tuple[str, Person] | None = None
    """(server id, person) the request is about; None for a create."""


def patient_resource(person: Person, mrn: str, rid: str | None = None) -> dict:
    resource: dict = {
        "resourceType": "Patient",
        "identifier": [
            {"use": "official", "system": ID_SYSTEM, "value": person.idcard},
            {"use": "usual", "system": MRN_SYSTEM, "value": mrn},
        ],
        "active": True,
        "name": [{"use": "official", "text": person.name, "family": person.family, "given": [person.given]}],
        "gender": "male" if person.sex == "M" else "female",
        "birthDate": person.birth.isoformat(),
        "address": [{"use": "home", "state": "云南省", "city": "昆明市", "country": "CN"}],
    }
    if rid is not None:
        resource["id"] = rid
    return resource


class FhirFactory:
    """Weighted FHIR interactions for one user; it remembers the patients the server created."""

    def __init__(
        self,
        weights: Mapping[str, float],
        *,
        new_id: Callable[[], str] | None = None,
        seed: int | None = None,
        remember: int = 1000,
    ) -> None:
        unknown = sorted(set(weights) - set(INTERACTIONS))
        if unknown:
            raise ValueError(f"unknown FHIR interaction {unknown[0]!r}; known: {', '.join(INTERACTIONS)}")
        self.names = [n for n in weights if weights[n] > 0]
        self.weights = [weights[n] for n in self.names]
        self.rng = random.Random(seed)
        self.people = People(self.rng.randrange(2**32))
        self.new_id = new_id or ControlIds(new_run_tag()).next
        """Unique ids (patient ids): process-wide when several users share one run."""
        self.created: deque[tuple[str, Person, str]] = deque(maxlen=remember)

    def pick(self, mix: Mapping[str, float] | None = None) -> str:
        if mix:
            names = [n for n in mix if n in INTERACTIONS]
            if names:
                return self.rng.choices(names, [mix[n] for n in names])[0]
        return self.rng.choices(self.names, self.weights)[0]

    def make(self, name: str | None = None, base: str = "/fhir") -> FhirRequest:
        name = name or self.pick()
        if name != "create Patient" and self.created:
            rid, person, mrn = self.created[int(self.rng.random() * len(self.created))]
            if name == "read Patient":
                return FhirRequest(name, "GET", f"{base}/Patient/{rid}", patient=(rid, person))
            if name == "search-type Patient":
                return FhirRequest(
                    name,
                    "GET",
                    f"{base}/Patient?identifier={ID_SYSTEM}%7C{person.idcard}",
                    patient=(rid, person),
                )
            body = json.dumps(patient_resource(person, mrn, rid), ensure_ascii=False).encode()
            return FhirRequest(name, "PUT", f"{base}/Patient/{rid}", body, patient=(rid, person))
        person = self.people.new()
        mrn = self.new_id()
        body = json.dumps(patient_resource(person, mrn), ensure_ascii=False).encode()
        return FhirRequest("create Patient", "POST", f"{base}/Patient", body, patient=(mrn, person))

    def created_as(self, request: FhirRequest, location: str | None) -> None:
        """Remember the id the server gave a created patient (from its Location header)."""
        if request.name != "create Patient" or not location or request.patient is None:
            return
        tail = location.split("/Patient/", 1)[-1] if "/Patient/" in location else ""
        rid = tail.split("/", 1)[0]
        if rid:
            self.created.append((rid, request.patient[1], request.patient[0]))


def answer_failure(status: int, body: bytes) -> str | None:
    """None for 2xx; else the status and what the OperationOutcome says."""
    if 200 <= status < 300:
        return None
    text = ""
    try:
        doc = json.loads(body)
        issues = doc.get("issue") if isinstance(doc, dict) else None
        if issues:
            first = issues[0]
            text = first.get("diagnostics") or (first.get("details") or {}).get("text") or ""
    except (ValueError, AttributeError, TypeError):
        pass
    reason = f"HTTP {status}: {' '.join(str(text).split())}" if text else f"HTTP {status}"
    return reason if len(reason) <= REASON_MAX else reason[: REASON_MAX - 1] + "…"
