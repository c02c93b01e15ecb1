"""`malformed`: a complete HTTP response whose body does not parse.

`mode`: `cut` (default: the first half of the body, so JSON or XML ends mid-document) or `garbage`
(bytes that are neither JSON nor XML). Content-Length is adjusted, so only the body is wrong.
"""

from __future__ import annotations

from typing import Any

from harness.proxy.faults.actions import Action, register
from harness.proxy.faults.context import ActionContext
from harness.proxy.faults.http_plan import HttpPlan
from harness.proxy.faults.params import Params

MODES = ("cut", "garbage")
GARBAGE = b"\x00\xff<<not json, not xml>>\xfe{"


def malform(body: bytes, mode: str) -> bytes:
    if mode == "garbage" or len(body) < 2:
        return GARBAGE
    return body[: len(body) // 2]


@register
class HttpMalformed(Action):
    type = "malformed"
    protocol = "http"

    @classmethod
    def parse(cls, p: Params) -> dict[str, Any]:
        return {"mode": p.choice("mode", MODES, "cut")}

    def apply(self, plan: HttpPlan, ctx: ActionContext) -> None:
        plan.malformed = self.params["mode"]
        plan.notes.append(f"response body made unparseable ({self.params['mode']})")
