"""HTTP messages as fault rules see them, and a one-rule engine deciding on them."""

from __future__ import annotations

import json
from typing import Any

from harness import codecs
from harness.http_wire import parse_head
from harness.proxy.faults.context import FaultContext
from harness.proxy.faults.engine import FaultEngine
from harness.proxy.faults.http_plan import HttpPlan, HttpView

MEDINS_2207 = {
    "infno": "2207",
    "msgid": "H53010200123202601050930000007",
    "mdtrtarea_admvs": "530102",
    "input": {"data": {"psn_no": "53010098825988438524", "mdtrt_id": "M1", "medfee_sumamt": 79.1}},
}
SOAP12 = (
    b'<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope"><soap:Body>'
    b'<urn:HIPMessageServer xmlns:urn="urn:hl7-org:v3"><action>PatientInfoRegister</action>'
    b"<message>x</message></urn:HIPMessageServer></soap:Body></soap:Envelope>"
)


def view(kind: str, method: str, path: str, body: bytes, headers: dict[str, str] | None = None) -> HttpView:
    fields = {"Host": "his.example", **(headers or {})}
    raw = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items())
    head = parse_head(raw.rstrip("\r\n").encode("latin-1"), request=True)
    meta = codecs.get(kind).request_meta(method, path, head.mapping(), body)
    return HttpView(kind, method, path, head, body, meta)


def medins(doc: dict[str, Any] | None = None) -> HttpView:
    body = json.dumps(doc or MEDINS_2207).encode()
    return view(
        "medins", "POST", "/fsi/api/rsfComIfsService/callService", body, {"Content-Type": "application/json"}
    )


def soap12() -> HttpView:
    return view(
        "soap", "POST", "/services/HIPMessageServer", SOAP12, {"Content-Type": "application/soap+xml"}
    )


def decide(rule: dict[str, Any], subject: HttpView, direction: str = "request"):
    engine = FaultEngine("t", "http", [rule])
    plan = HttpPlan()
    applied = engine.decide(
        direction, subject.body, subject, FaultContext(channel="t", request_meta=subject), plan=plan
    )
    return applied, plan
