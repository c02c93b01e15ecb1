"""`delay` (HTTP): hold a request `ms` (± `jitter_ms`) before forwarding, a response before relaying."""

from __future__ import annotations

from typing import Any

from proxies.faults.actions import Action, register
from proxies.faults.context import ActionContext
from proxies.faults.http_plan import HttpPlan
from proxies.faults.params import Params

MAX_MS = 3_600_000


@register
class HttpDelay(Action):
    type = "delay"
    protocol = "http"

    @classmethod
    def parse(cls, p: Params) -> dict[str, Any]:
        p.required("ms", "milliseconds to wait")
        return {
            "ms": p.number("ms", minimum=0, maximum=MAX_MS),
            "jitter_ms": p.number("jitter_ms", 0, minimum=0, maximum=MAX_MS),
        }

    def apply(self, plan: HttpPlan, ctx: ActionContext) -> None:
        ms = float(self.params["ms"])
        jitter = float(self.params["jitter_ms"])
        if jitter:
            ms = max(0.0, ms + ctx.rng.uniform(-jitter, jitter))
        if ctx.direction == "request":
            plan.delay_s += ms / 1000.0
            plan.notes.append(f"request delayed {ms:.0f} ms before forwarding")
        else:
            plan.hold_s += ms / 1000.0
            plan.notes.append(f"response delayed {ms:.0f} ms before relaying")
