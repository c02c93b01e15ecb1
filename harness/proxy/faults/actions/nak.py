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
from harness.proxy.faults.params import Params, RuleError
from harness.proxy.faults.plan import Plan

CODES = ("AE", "AR", "CE", "CR", "AA", "CA")
MAX_TEXT_CHARS = 2000


def check_ack_text(text: str, where: str) -> None:
    """Refuse text that would break the MLLP frame or the ACK's segments once written into the ACK.

    0x0B and 0x1C are MLLP's block characters: in a reply they end the frame early and the sender reads
    garbage. Other control characters (NUL, ESC, ...) have no place in an HL7 text field either. CR and
    LF are allowed: the ACK builder writes them as the HL7 escapes \\X0D\\ and \\X0A\\, as the
    delimiters |^~\\& are escaped, so the segment structure stays intact.
    """
    if len(text) > MAX_TEXT_CHARS:
        raise RuleError(where, f"{len(text)} characters; at most {MAX_TEXT_CHARS}")
    for i, char in enumerate(text):
        code = ord(char)
        if (code < 0x20 and char not in "\r\n\t") or code == 0x7F or 0x80 <= code <= 0x9F:
            what = {0x0B: "the MLLP start block 0x0B", 0x1C: "the MLLP end block 0x1C"}.get(
                code, f"control character 0x{code:02X}"
            )
            raise RuleError(
                where, f"{what} at {i} cannot go into an ACK (it would break the MLLP frame or the message)"
            )


@register
class Nak(Action):
    type = "nak"

    @classmethod
    def parse(cls, p: Params) -> dict[str, Any]:
        text = p.string("text", None)
        if text is not None:
            check_ack_text(text, f"{p.where}.text")
        location = p.string("error_location", None)
        if location is not None:
            check_ack_text(location, f"{p.where}.error_location")
            from harness.hl7v2.message import parse_path

            try:
                parse_path(location)
            except ValueError as exc:
                raise RuleError(f"{p.where}.error_location", f"{location!r}: {exc}") from None
        return {"code": p.choice("code", CODES, "AE"), "text": text, "error_location": location}

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
