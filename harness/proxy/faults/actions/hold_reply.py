"""`hold_reply`: forward at once but keep the upstream's reply for `ms` before relaying it.

Unlike `delay` on a request, the upstream sees the message on time; only the sender's view is slow.
"""

from __future__ import annotations

from typing import Any

from harness.proxy.faults.actions import Action, register
from harness.proxy.faults.context import ActionContext
from harness.proxy.faults.params import Params
from harness.proxy.faults.plan import Plan

MAX_MS = 3_600_000


@register
class HoldReply(Action):
    type = "hold_reply"

    @classmethod
    def parse(cls, p: Params) -> dict[str, Any]:
        p.required("ms", "milliseconds to hold the reply")
        return {"ms": p.number("ms", minimum=0, maximum=MAX_MS)}

    def apply(self, plan: Plan, ctx: ActionContext) -> None:
        ms = float(self.params["ms"])
        plan.hold_reply_s += ms / 1000.0
        plan.notes.append(f"reply held {ms:.0f} ms before relaying")
