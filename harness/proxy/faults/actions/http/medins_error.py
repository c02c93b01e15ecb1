"""`medins_error`: a medical-insurance centre refusal in the centre's own envelope (HTTP 200).

The reply is the national interface's response envelope: `infcode` (default -1; kept as given,
number or string), `err_msg`, `inf_refmsgid` (receiver admdvs + time + serial, the admdvs taken from
the request's `mdtrtarea_admvs`), `refmsg_time`/`respond_time` (yyyyMMddHHmmssSSS), and the rest as the
centre (and `harness mock medins`) sends it for a refusal: `output` an empty object, the other members
empty strings, in the same order, so a client sees the same shape from the fault as from the centre.
"""

from __future__ import annotations

import json
import time
from typing import Any

from harness.proxy.faults.actions import Action, register
from harness.proxy.faults.context import ActionContext
from harness.proxy.faults.http_plan import HttpPlan, HttpReply
from harness.proxy.faults.params import Params, RuleError


def _stamp(epoch: float) -> str:
    return time.strftime("%Y%m%d%H%M%S", time.localtime(epoch)) + f"{int(epoch * 1000) % 1000:03d}"


def medins_envelope(infcode: Any, err_msg: str, admdvs: str, serial: int, now: float | None = None) -> dict:
    now = time.time() if now is None else now
    stamp = _stamp(now)
    return {
        "infcode": infcode,
        "inf_refmsgid": f"{admdvs[:6]:0>6}{stamp[:14]}{serial % 10**10:010d}",
        "refmsg_time": stamp,
        "respond_time": stamp,
        "err_msg": err_msg,
        "warn_msg": "",
        "cainfo": "",
        "signtype": "",
        "enctype": "",
        "output": {},
    }


@register
class MedinsError(Action):
    type = "medins_error"
    protocol = "http"

    @classmethod
    def parse(cls, p: Params) -> dict[str, Any]:
        infcode = p.raw("infcode")
        if infcode is None:
            infcode = -1
        if isinstance(infcode, bool) or not isinstance(infcode, (int, str)):
            raise RuleError(f"{p.where}.infcode", f"expected a number or a string, got {infcode!r}")
        return {
            "infcode": infcode,
            "err_msg": p.string("err_msg", "交易失败：fault injected by the harness proxy"),
        }

    def apply(self, plan: HttpPlan, ctx: ActionContext) -> None:
        request = ctx.request_meta
        admdvs = "530100"
        if request is not None:
            admdvs = str(request.meta.get("mdtrtarea_admvs") or admdvs)
        doc = medins_envelope(
            self.params["infcode"], self.params["err_msg"], admdvs, ctx.rng.randrange(10**10)
        )
        body = json.dumps(doc, ensure_ascii=False).encode("utf-8")
        plan.reply = HttpReply(200, "OK", [("Content-Type", "application/json;charset=UTF-8")], body)
        if ctx.direction == "request":
            plan.forward = False
        plan.notes.append(
            f"medical-insurance error infcode={self.params['infcode']}: {self.params['err_msg']}"
        )
