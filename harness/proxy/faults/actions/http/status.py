"""`status`: answer with an HTTP error of the rule's choosing (500/502/503, 429 with Retry-After, ...).

On a request the upstream never sees it; on a response the upstream's answer is replaced. `body` is
sent as given (default: a line saying a fault rule answered), `headers` are added, `retry_after`
sets Retry-After (seconds).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from harness.proxy.faults.actions import Action, register
from harness.proxy.faults.context import ActionContext
from harness.proxy.faults.http_fields import check_name, check_value
from harness.proxy.faults.http_plan import HttpPlan, HttpReply
from harness.proxy.faults.params import Params, RuleError


def reason(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return "Status"


@register
class HttpStatus(Action):
    type = "status"
    protocol = "http"

    @classmethod
    def parse(cls, p: Params) -> dict[str, Any]:
        code = p.integer("code", 503, minimum=100, maximum=599)
        headers = p.mapping("headers") or {}
        for name, value in headers.items():
            at = f"{p.where}.headers.{name}"
            check_name(name, at, framing_allowed=False)
            if isinstance(value, bool) or not isinstance(value, (str, int)):
                raise RuleError(at, f"expected text or a number, got {value!r}")
            check_value(str(value), at)
        given_type = [name for name in headers if name.lower() == "content-type"]
        if given_type and p.has("content_type"):
            raise RuleError(f"{p.where}.headers.{given_type[0]}", "give the type once: content_type or here")
        retry_after = p.integer("retry_after", None, minimum=0)
        if code == 429 and retry_after is None and not any(k.lower() == "retry-after" for k in headers):
            retry_after = 1
        content_type = p.string("content_type", "text/plain; charset=utf-8")
        check_value(content_type, f"{p.where}.content_type")
        if given_type:
            content_type = str(headers[given_type[0]])
            headers = {k: v for k, v in headers.items() if k != given_type[0]}
        return {
            "code": code,
            "body": p.string("body", None),
            "content_type": content_type,
            "headers": {k: str(v) for k, v in headers.items()},
            "retry_after": retry_after,
        }

    def apply(self, plan: HttpPlan, ctx: ActionContext) -> None:
        code = self.params["code"]
        body_text = self.params["body"]
        if body_text is None:
            body_text = f"{code} {reason(code)} (answered by fault rule {ctx.rule_id} of the harness proxy)\n"
        body = body_text.encode("utf-8")
        headers = [("Content-Type", self.params["content_type"])]
        if self.params["retry_after"] is not None:
            headers.append(("Retry-After", str(self.params["retry_after"])))
        headers.extend(self.params["headers"].items())
        plan.reply = HttpReply(code, reason(code), headers, body)
        if ctx.direction == "request":
            plan.forward = False
            plan.notes.append(f"answered {code} instead of forwarding")
        else:
            plan.notes.append(f"upstream response replaced by {code}")
