"""`truncate`: the client gets the response head and only part of its body, then the connection closes.

`keep_bytes` (default: half the body) body bytes are sent; the head still announces the full length,
so the client sees a response cut short, as when a gateway dies mid-transfer.
"""

from __future__ import annotations

from typing import Any

from harness.proxy.faults.actions import Action, register
from harness.proxy.faults.context import ActionContext
from harness.proxy.faults.http_plan import HttpPlan
from harness.proxy.faults.params import Params


@register
class HttpTruncate(Action):
    type = "truncate"
    protocol = "http"

    @classmethod
    def parse(cls, p: Params) -> dict[str, Any]:
        return {"keep_bytes": p.integer("keep_bytes", None, minimum=0)}

    def apply(self, plan: HttpPlan, ctx: ActionContext) -> None:
        keep = self.params["keep_bytes"]
        plan.truncate_keep = -1 if keep is None else keep
        what = "half of the body" if keep is None else f"{keep} body bytes"
        plan.notes.append(f"response cut after {what}, then the connection closed")
