"""`reset` (HTTP): abort the client's connection with a TCP RST.

`when`: `before_forward` (default on a request: the upstream never sees it) or `after_forward` (the
upstream handled it, the client loses the answer with the connection; the only choice on a response).
"""

from __future__ import annotations

from typing import Any

from harness.proxy.faults.actions import Action, register
from harness.proxy.faults.context import ActionContext
from harness.proxy.faults.http_plan import HttpPlan
from harness.proxy.faults.params import Params, RuleError

WHEN = ("before_forward", "after_forward")


@register
class HttpReset(Action):
    type = "reset"
    protocol = "http"

    @classmethod
    def parse(cls, p: Params) -> dict[str, Any]:
        return {"when": p.choice("when", WHEN, None)}

    def check_direction(self, direction: str, where: str = "match.direction") -> None:
        if direction == "response" and self.params["when"] == "before_forward":
            raise RuleError("action.when", "a rule matching responses acts after forwarding (after_forward)")

    def apply(self, plan: HttpPlan, ctx: ActionContext) -> None:
        plan.reset = True
        plan.reply = None
        when = self.params["when"] or ("before_forward" if ctx.direction == "request" else "after_forward")
        if when == "before_forward":
            plan.forward = False
            plan.notes.append("client connection reset (RST) instead of forwarding")
        else:
            plan.notes.append("client connection reset (RST) instead of relaying the response")
