"""`duplicate`: forward the request `count` times (default 2), as a sender's blind resend would.

The sender gets the first reply; the extra replies are captured, not relayed. It tests the upstream's
duplicate detection (MSH-10) rather than the sender.
"""

from __future__ import annotations

from typing import Any

from harness.proxy.faults.actions import Action, register
from harness.proxy.faults.context import ActionContext
from harness.proxy.faults.params import Params
from harness.proxy.faults.plan import Plan


@register
class Duplicate(Action):
    type = "duplicate"
    directions = ("request",)

    @classmethod
    def parse(cls, p: Params) -> dict[str, Any]:
        return {"count": p.integer("count", 2, minimum=2, maximum=100)}

    def apply(self, plan: Plan, ctx: ActionContext) -> None:
        count = int(self.params["count"])
        plan.forward_count = max(plan.forward_count, count)
        plan.notes.append(f"request forwarded {count} times; extra replies captured, not relayed")
