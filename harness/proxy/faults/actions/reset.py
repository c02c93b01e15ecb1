"""`reset`: abort the sender's connection with a TCP RST (the sender sees ECONNRESET).

On a request nothing is forwarded; on a response the upstream processed the message but the reply is
lost with the connection.
"""

from __future__ import annotations

from harness.proxy.faults.actions import Action, register
from harness.proxy.faults.context import ActionContext
from harness.proxy.faults.plan import Plan


@register
class Reset(Action):
    type = "reset"

    def apply(self, plan: Plan, ctx: ActionContext) -> None:
        plan.reset_sender = True
        plan.reply = None
        plan.reply_to_sender = False
        if ctx.direction == "request":
            plan.forward = False
            plan.notes.append("sender connection reset (RST) instead of forwarding")
        else:
            plan.notes.append("sender connection reset (RST) instead of relaying the reply")
