"""CDC front-end metadata: the table pushed (snake_case, whichever path named it) and the `result`.

The front end's own path names the table in camelCase (`hclient/emr/receive/emrInfReport`), the
simulator's older one in snake_case (`/cdc/emr_inf_report`); both record `emr_inf_report`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from harness.codecs import HttpKind, Meta, jsonbody, path_segments, register


class CdcCodec(HttpKind):
    kind = "cdc"

    def read_request(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Meta:
        problems: list[str] = []
        meta: Meta = {}
        segments = path_segments(path)
        doc = jsonbody.load(body, problems, "request body") if method.upper() == "POST" else None
        table = doc.get("table") if isinstance(doc, dict) else None
        if not table and segments:
            table = re.sub(r"(?<=[a-z0-9])([A-Z])", lambda m: "_" + m.group(1).lower(), segments[-1])
        if table:
            meta["table"] = table
        if isinstance(doc, dict):
            record = doc.get("data") if isinstance(doc.get("data"), dict) else doc
            for key in ("disease_code", "serial_number", "patient_id"):
                if record.get(key) not in (None, ""):
                    meta[key] = record[key]
        if problems:
            meta["problems"] = problems
        return meta

    def read_response(self, request: Meta, status: int, headers: Mapping[str, str], body: bytes) -> Meta:
        problems: list[str] = []
        meta: Meta = {}
        doc = jsonbody.load(body, problems, "response body")
        if isinstance(doc, dict):
            if "result" in doc:
                meta["result"] = doc["result"]
            else:
                problems.append("response has no result")
            for key in ("errorCode", "errorName", "reasons"):
                if doc.get(key):
                    meta[key] = doc[key]
        if problems:
            meta["problems"] = problems
        return meta


    def message_type(self, meta: Meta) -> str | None:
        table = meta.get("table")
        return None if table is None else str(table)

    def control_id(self, meta: Meta) -> str | None:
        serial = meta.get("serial_number")
        return None if serial is None else str(serial)

    def ack_code(self, status: int | None, meta: Meta) -> str | None:
        if "result" in meta:
            result = meta["result"]
            return "true" if result is True else "false" if result is False else str(result)
        return super().ack_code(status, meta)

    def accepted(self, status: int, meta: Meta) -> bool:
        return status < 400 and meta.get("result") is True


register(CdcCodec())
