"""`nak`: answer the sender with a negative ACK built by the harness; the request is not forwarded.

`code` is AE (default) or AR (or the commit-mode CE/CR); an accepting AA/CA is produced only when a rule
says so explicitly, the one way the proxy ever answers success on the upstream's behalf. A rule on the
response direction replaces the upstream's reply with the NAK (built against the request, so MSA-2 is
the request's MSH-10).
"""

from __future__ import annotations

from typing import Any

from harness.proxy.faults.actions import Action, register
from harness.proxy.faults.context import ActionContext
from harness.proxy.faults.params import Params
from harness.proxy.faults.plan import Plan

CODES = ("AE", "AR", "CE", "CR", "AA", "CA")


@register
class Nak(Action):
    type = "nak"

    @classmethod
    def parse(cls, p: Params) -> dict[str, Any]:
        return {
            "code": p.choice("code", CODES, "AE"),
            "text": p.string("text", None),
            "error_location": p.string("error_location", None),
        }

    def text(self, ctx: ActionContext) -> str:
        return self.params["text"] or f"fault injected by harness rule {ctx.rule_id}"

    def apply(self, plan: Plan, ctx: ActionContext) -> None:
        from harness.hl7v2.ack import build_ack, reject_unparseable

        request = ctx.request
        if request is None:
            raise ValueError("a nak on a response needs the request (FaultContext.request) to answer it")
        code = self.params["code"]
        text = self.text(ctx)
        try:
            reply = build_ack(
                request, code, text=text, error_location=self.params["error_location"], charset=ctx.charset
            )
            done = f"answered {code} ({text})"
        except ValueError as exc:
            reply = reject_unparseable(request, f"{text}; {exc}")
            done = f"answered AR for an unparseable request ({exc})"
        plan.reply = reply
        plan.reply_to_sender = True
        plan.reply_transform = None
        if ctx.direction == "request":
            plan.forward = False
            plan.notes.append(f"{done}; request not forwarded")
        else:
            plan.notes.append(f"{done} instead of the upstream's reply")
