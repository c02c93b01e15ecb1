"""`throttle`: trickle the message through at `bytes_per_s`, like Toxiproxy's bandwidth toxic.

`target` picks the way: the request towards the upstream, the reply towards the sender, or both
(default: the direction the rule matched).
"""

from __future__ import annotations

from typing import Any

from harness.proxy.faults.actions import Action, register
from harness.proxy.faults.context import ActionContext
from harness.proxy.faults.params import Params, RuleError
from harness.proxy.faults.plan import Plan


@register
class Throttle(Action):
    type = "throttle"

    @classmethod
    def parse(cls, p: Params) -> dict[str, Any]:
        p.required("bytes_per_s", "the rate in bytes per second")
        rate = p.integer("bytes_per_s", minimum=1)
        target = p.choice("target", ("request", "response", "both"), None)
        return {"bytes_per_s": rate, "target": target}

    def check_direction(self, direction: str, where: str = "match.direction") -> None:
        if direction == "response" and self.params["target"] in ("request", "both"):
            raise RuleError(
                "action.target",
                "a rule matching responses cannot throttle the request (it was already forwarded)",
            )

    def apply(self, plan: Plan, ctx: ActionContext) -> None:
        rate = int(self.params["bytes_per_s"])
        target = self.params["target"] or ctx.direction
        if target in ("request", "both"):
            plan.throttle_request_bps = rate
        if target in ("response", "both"):
            plan.throttle_reply_bps = rate
        what = {"request": "request", "response": "reply", "both": "request and reply"}[target]
        plan.notes.append(f"{what} throttled to {rate} bytes/s")
