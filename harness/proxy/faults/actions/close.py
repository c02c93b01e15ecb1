"""`close`: close the sender's connection cleanly (FIN) at a chosen point.

`when`: `before_forward` (the request never reaches the upstream), `after_forward` (the upstream got
it, the sender gets no reply), `mid_frame` (the sender gets part of the reply frame, then the close).
"""

from __future__ import annotations

from typing import Any

from harness.proxy.faults.actions import Action, register
from harness.proxy.faults.context import ActionContext
from harness.proxy.faults.params import Params, RuleError
from harness.proxy.faults.plan import Plan

WHEN = ("before_forward", "after_forward", "mid_frame")


@register
class Close(Action):
    type = "close"

    @classmethod
    def parse(cls, p: Params) -> dict[str, Any]:
        return {"when": p.choice("when", WHEN, "before_forward")}

    def check_direction(self, direction: str, where: str = "match.direction") -> None:
        if direction == "response" and self.params["when"] == "before_forward":
            raise RuleError(
                "action.when",
                "'before_forward' (the default) cannot apply to a rule matching responses: the request "
                "was already forwarded; use after_forward or mid_frame",
            )

    def apply(self, plan: Plan, ctx: ActionContext) -> None:
        when = self.params["when"]
        plan.close_sender = when
        if when == "before_forward":
            plan.forward = False
            plan.reply = None
            plan.reply_to_sender = False
            plan.notes.append("sender connection closed before forwarding; request not forwarded")
        elif when == "after_forward":
            plan.reply = None
            plan.reply_to_sender = False
            plan.notes.append("sender connection closed after forwarding, before the reply")
        else:
            plan.notes.append("sender connection closed in the middle of the reply frame")
