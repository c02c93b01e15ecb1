"""The centre's HTTP surface (moto's responses.py): paths, JSON, the response envelope, the rule table.

Every answer is HTTP 200 with the response envelope, as the real gateway does; bad input of any kind is
`infcode -1` with an `err_msg` naming the field and the problem. The one exception is a successful
9102 file download, whose body is the file itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from harness.simulators.medins import (
    catalogue,
    clearing,
    files,
    inventory,
    records,
    session,
    supervision,
    transport,
    visits,
)
from harness.simulators.medins.call import FileReply, MedinsError
from harness.simulators.medins.centre import Centre, Rule
from harness.simulators.wire import HttpRequest, HttpResponse, JsonBodyError, json_response, load_json
from harness.spec.medins.checks import is_yunnan
from harness.spec.medins.model import MedinsSpec, load_spec

ERR_MSG_MAX = 200

# The rule table: every `behaviour.rule` a transaction spec may name, and the code that serves it.
RULES: dict[str, Rule] = {
    "sign_in": session.sign_in,
    "sign_out": session.sign_out,
    "dll_init": session.dll_init,
    "person_info": session.person_info,
    "institutions": session.institutions,
    "staff": session.staff,
    "treatment_check": session.treatment_check,
    "register_outpatient": visits.register_outpatient,
    "cancel_outpatient": visits.cancel_outpatient,
    "outpatient_info": visits.outpatient_info,
    "upload_fees": visits.upload_fees,
    "revoke_outpatient_fees": visits.revoke_outpatient_fees,
    "revoke_inpatient_fees": visits.revoke_inpatient_fees,
    "settle": visits.settle,
    "reverse_settlement": visits.reverse_settlement,
    "admit": visits.admit,
    "update_admission": visits.update_admission,
    "discharge": visits.discharge,
    "cancel_discharge": visits.cancel_discharge,
    "cancel_admission": visits.cancel_admission,
    "reverse_message": visits.reverse_message,
    "visit_query": visits.visit_query,
    "settlement_query": visits.settlement_query,
    "diagnosis_query": visits.diagnosis_query,
    "fee_query": visits.fee_query,
    "chronic_drug_query": visits.chronic_drug_query,
    "cumulative_query": visits.cumulative_query,
    "in_hospital_query": visits.in_hospital_query,
    "record": records.record,
    "update": records.update,
    "revoke": records.revoke,
    "query": records.query,
    "catalogue_download": catalogue.download,
    "catalogue_page": catalogue.paged,
    "dictionary": catalogue.dictionary,
    "file_upload": files.upload,
    "file_download": files.download,
    "reconcile_totals": clearing.totals,
    "reconcile_details": clearing.details,
    "clearing_apply": clearing.apply,
    "clearing_revoke": clearing.revoke,
    "inventory_move": inventory.move,
    "inventory_delete": inventory.delete,
    "prescreen": supervision.analyse,
}


class MedinsSimulator(Centre):
    """The Yunnan medical-insurance centre (医保中心) behind both transports."""

    name = "medins"

    def __init__(
        self,
        spec: MedinsSpec | None = None,
        *,
        strict: bool = False,
        clock: Callable[[], datetime] | None = None,
        max_entries: int = 10_000,
        tif_token: str | None = None,
        dll_credentials: dict[str, str] | None = None,
        epoch: Callable[[], float] = time.time,
    ) -> None:
        spec = spec or load_spec(rules=set(RULES))
        kwargs: dict[str, Any] = {"strict": strict, "max_entries": max_entries}
        if clock is not None:
            kwargs["clock"] = clock
        super().__init__(spec, RULES, pre_checks=[records.check_filings], **kwargs)
        self.tif_token = tif_token
        self.dll_credentials = dll_credentials
        self.epoch = epoch
        self.replies = 0

    # Tests and tools look at these directly.
    @property
    def sign_ins(self):
        return self.state.sign_ins

    @property
    def messages(self):
        return self.state.messages

    # ---------------------------------------------------------------------------------- HTTP
    def handle(self, request: HttpRequest) -> HttpResponse:
        routed = transport.route(request.path)
        if routed is None:
            return json_response(
                404,
                {
                    "error": f"no such path {request.path}; "
                    f"POST {transport.GATEWAY_PATH} or {transport.YUNNAN_PATH}"
                },
            )
        if request.method != "POST":
            resp = json_response(405, {"error": f"method {request.method} not allowed; use POST"})
            resp.headers["Allow"] = "POST"
            return resp
        channel, path_infno = routed
        received = self.clock()
        envelope: dict | None = None
        try:
            if channel == "national" and self.tif_token is not None:
                transport.check_tif(request, self.tif_token, self.epoch)
            envelope = self._parse(request.body)
            if channel == "yunnan":
                transport.check_dll(request, envelope, self.dll_credentials)
            if path_infno and str(envelope.get("infno")) != path_infno:
                raise MedinsError(f"infno {envelope.get('infno')!r} does not match the path's /{path_infno}")
            output = self.serve(envelope, channel)
            if isinstance(output, FileReply):
                return HttpResponse(
                    200,
                    {
                        "Content-Type": "application/octet-stream",
                        "Content-Disposition": f'attachment; filename="{output.filename}"',
                    },
                    output.content,
                )
            return json_response(200, self._reply(envelope, received, 0, "", output))
        except MedinsError as exc:
            return json_response(200, self._reply(envelope, received, -1, str(exc), None))

    def too_large(self, request: HttpRequest, limit: int) -> HttpResponse:
        err = f"request body is larger than the {limit}-byte limit"
        return json_response(413, self._reply(None, self.clock(), -1, err, None))

    @staticmethod
    def _parse(body: bytes) -> dict:
        try:
            value = load_json(body)
        except JsonBodyError as exc:
            raise MedinsError(f"request {exc}") from None
        if not isinstance(value, dict):
            raise MedinsError(f"request body must be a JSON object, got {type(value).__name__}")
        return value

    def _reply(self, env: dict | None, received: datetime, code: int, err: str, output: Any) -> dict:
        self.replies += 1
        env = env or {}
        area = env.get("mdtrtarea_admvs")
        receiver = area if isinstance(area, str) and is_yunnan(self.spec, area) else "530000"
        if len(err) > ERR_MSG_MAX:
            err = err[: ERR_MSG_MAX - 1] + "…"
        now = self.clock()
        return {
            "infcode": code,
            "inf_refmsgid": f"{receiver}{received:%Y%m%d%H%M%S}{self.replies % 10**10:010d}",
            "refmsg_time": f"{received:%Y%m%d%H%M%S}{received.microsecond // 1000:03d}",
            "respond_time": f"{now:%Y%m%d%H%M%S}{now.microsecond // 1000:03d}",
            "err_msg": err,
            "warn_msg": "",
            "cainfo": "",
            "signtype": "",
            "enctype": "",
            "output": output if output is not None else {},
        }
