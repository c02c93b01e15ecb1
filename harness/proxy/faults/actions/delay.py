"""`delay`: hold the message for `ms` (± `jitter_ms`) before it moves on, like Toxiproxy's latency toxic.

A matched request waits before it is forwarded; a matched response waits before it is relayed.
"""

from __future__ import annotations

from typing import Any

from harness.proxy.faults.actions import Action, register
from harness.proxy.faults.context import ActionContext
from harness.proxy.faults.params import Params
from harness.proxy.faults.plan import Plan

MAX_MS = 3_600_000


@register
class Delay(Action):
    type = "delay"

    @classmethod
    def parse(cls, p: Params) -> dict[str, Any]:
        p.required("ms", "milliseconds to wait")
        ms = p.number("ms", minimum=0, maximum=MAX_MS)
        jitter = p.number("jitter_ms", 0, minimum=0, maximum=MAX_MS)
        return {"ms": ms, "jitter_ms": jitter}

    def jittered_ms(self, ctx: ActionContext) -> float:
        """This time's wait: ms, moved by up to ± jitter_ms (never below 0)."""
        ms = float(self.params["ms"])
        jitter = float(self.params["jitter_ms"])
        if jitter:
            ms = max(0.0, ms + ctx.rng.uniform(-jitter, jitter))
        return ms

    def apply(self, plan: Plan, ctx: ActionContext) -> None:
        ms = self.jittered_ms(ctx)
        if ctx.direction == "request":
            plan.delay_s += ms / 1000.0
            plan.notes.append(f"request delayed {ms:.0f} ms before forwarding")
        else:
            plan.hold_reply_s += ms / 1000.0
            plan.notes.append(f"reply delayed {ms:.0f} ms before relaying")
