"""`soap_fault`: answer a SOAP Fault in the request's own SOAP version (HTTP 500, as SOAP requires).

`code`: Server/Receiver (default) or Client/Sender, mapped to the version's names (SOAP 1.1
`soap:Server`, SOAP 1.2 `soap:Receiver`); `text`: the faultstring / Reason text.
"""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape

from harness.proxy.faults.actions import Action, register
from harness.proxy.faults.context import ActionContext
from harness.proxy.faults.http_plan import HttpPlan, HttpReply
from harness.proxy.faults.params import Params

SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
CODES = ("Server", "Client", "Receiver", "Sender")
_V11 = {"Server": "Server", "Receiver": "Server", "Client": "Client", "Sender": "Client"}
_V12 = {"Server": "Receiver", "Receiver": "Receiver", "Client": "Sender", "Sender": "Sender"}


def fault_envelope(version: str, code: str, text: str) -> tuple[bytes, str]:
    """(body, content type) of a SOAP Fault in version '1.1' or '1.2'."""
    text = escape(text)
    if version == "1.2":
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?>'
            f'<soap:Envelope xmlns:soap="{SOAP12}"><soap:Body><soap:Fault>'
            f"<soap:Code><soap:Value>soap:{_V12[code]}</soap:Value></soap:Code>"
            f'<soap:Reason><soap:Text xml:lang="en">{text}</soap:Text></soap:Reason>'
            f"</soap:Fault></soap:Body></soap:Envelope>"
        )
        return body.encode("utf-8"), "application/soap+xml; charset=utf-8"
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?>'
        f'<soap:Envelope xmlns:soap="{SOAP11}"><soap:Body><soap:Fault>'
        f"<faultcode>soap:{_V11[code]}</faultcode><faultstring>{text}</faultstring>"
        f"</soap:Fault></soap:Body></soap:Envelope>"
    )
    return body.encode("utf-8"), "text/xml; charset=utf-8"


@register
class SoapFault(Action):
    type = "soap_fault"
    protocol = "http"

    @classmethod
    def parse(cls, p: Params) -> dict[str, Any]:
        return {
            "code": p.choice("code", CODES, "Server"),
            "text": p.string("text", "fault injected by the harness proxy"),
            "status": p.integer("status", 500, minimum=200, maximum=599),
        }

    def apply(self, plan: HttpPlan, ctx: ActionContext) -> None:
        request = ctx.request_meta
        version = request.soap_version if request is not None else "1.1"
        body, ctype = fault_envelope(version, self.params["code"], self.params["text"])
        status = self.params["status"]
        plan.reply = HttpReply(
            status, "Internal Server Error" if status == 500 else "Fault", [("Content-Type", ctype)], body
        )
        if ctx.direction == "request":
            plan.forward = False
        plan.notes.append(f"SOAP {version} Fault {self.params['code']}: {self.params['text']}")
