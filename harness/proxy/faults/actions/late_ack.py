"""`late_ack`: relay the upstream's reply only after the sender has given up waiting for it.

The default wait is the channel's ACK timeout plus one second, so the ACK arrives while the sender is
already on its next message (or resending): the case where senders that do not check MSA-2 attach the
late ACK to the wrong message.
"""

from __future__ import annotations

from typing import Any

from harness.proxy.faults.actions import Action, register
from harness.proxy.faults.context import ActionContext
from harness.proxy.faults.params import Params
from harness.proxy.faults.plan import Plan

MAX_MS = 3_600_000
MARGIN_MS = 1000.0


@register
class LateAck(Action):
    type = "late_ack"

    @classmethod
    def parse(cls, p: Params) -> dict[str, Any]:
        return {"after_ms": p.number("after_ms", None, minimum=0, maximum=MAX_MS)}

    def wait_ms(self, ctx: ActionContext) -> float:
        after = self.params["after_ms"]
        if after is None:
            return ctx.channel.ack_timeout_s * 1000.0 + MARGIN_MS
        return float(after)

    def apply(self, plan: Plan, ctx: ActionContext) -> None:
        ms = self.wait_ms(ctx)
        plan.hold_reply_s = max(plan.hold_reply_s, ms / 1000.0)
        plan.notes.append(
            f"reply relayed late: after {ms:.0f} ms (sender's ACK timeout {ctx.channel.ack_timeout_s:g} s)"
        )
