"""`slow_body`: relay the response body at `bps` bytes per second (a slow or congested link)."""

from __future__ import annotations

from typing import Any

from harness.proxy.faults.actions import Action, register
from harness.proxy.faults.context import ActionContext
from harness.proxy.faults.http_plan import HttpPlan
from harness.proxy.faults.params import Params


@register
class HttpSlowBody(Action):
    type = "slow_body"
    protocol = "http"

    @classmethod
    def parse(cls, p: Params) -> dict[str, Any]:
        p.required("bps", "bytes per second")
        return {"bps": p.integer("bps", minimum=1)}

    def apply(self, plan: HttpPlan, ctx: ActionContext) -> None:
        plan.body_bps = self.params["bps"]
        plan.notes.append(f"response body sent at {self.params['bps']} bytes/s")
