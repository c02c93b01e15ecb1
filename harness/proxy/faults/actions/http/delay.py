"""`delay` (HTTP): hold a request `ms` (± `jitter_ms`) before forwarding, a response before relaying.

Parameters and jitter as for the MLLP `delay`; only the plan it edits differs.
"""

from __future__ import annotations

from harness.proxy.faults.actions import register
from harness.proxy.faults.actions.delay import Delay
from harness.proxy.faults.context import ActionContext
from harness.proxy.faults.http_plan import HttpPlan


@register
class HttpDelay(Delay):
    type = "delay"
    protocol = "http"

    def apply(self, plan: HttpPlan, ctx: ActionContext) -> None:  # type: ignore[override]
        ms = self.jittered_ms(ctx)
        if ctx.direction == "request":
            plan.delay_s += ms / 1000.0
            plan.notes.append(f"request delayed {ms:.0f} ms before forwarding")
        else:
            plan.hold_s += ms / 1000.0
            plan.notes.append(f"response delayed {ms:.0f} ms before relaying")
