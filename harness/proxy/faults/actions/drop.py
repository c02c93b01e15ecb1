"""`drop`: the message vanishes; the sender gets no reply and waits into its own timeout.

On a request nothing is forwarded; on a response the upstream's reply is swallowed (the upstream did
process the message, which is exactly the case an engineer wants to see a sender handle).
"""

from __future__ import annotations

from harness.proxy.faults.actions import Action, register
from harness.proxy.faults.context import ActionContext
from harness.proxy.faults.plan import Plan


@register
class Drop(Action):
    type = "drop"

    def apply(self, plan: Plan, ctx: ActionContext) -> None:
        if ctx.direction == "request":
            plan.forward = False
            plan.notes.append("request dropped: not forwarded, no reply")
        else:
            plan.notes.append("upstream reply dropped: not relayed to the sender")
        plan.reply = None
        plan.reply_to_sender = False
