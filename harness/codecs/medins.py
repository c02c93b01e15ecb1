"""Medical-insurance (医保) envelope metadata: `infno`, `msgid`, areas, `infcode`, `err_msg`.

`infcode` arrives as a number or a string in the field; the value is kept as sent and its JSON type is
recorded beside it so a report can say which.
"""

from __future__ import annotations

from collections.abc import Mapping

from harness.codecs import HttpKind, Meta, jsonbody, register

_REQUEST_KEYS = (
    "infno",
    "msgid",
    "mdtrtarea_admvs",
    "insuplc_admdvs",
    "fixmedins_code",
    "sign_no",
    "opter_type",
)
_RESPONSE_KEYS = ("inf_refmsgid", "refmsg_time", "respond_time", "err_msg", "warn_msg")


def infcode_ok(value: object) -> bool | None:
    """True for 0 / "0", False for any other code, None when absent or unreadable."""
    if value is None:
        return None
    try:
        return int(str(value).strip()) == 0
    except ValueError:
        return False


MEDINS_IGNORES = (
    "inf_refmsgid",
    "refmsg_time",
    "respond_time",
    "output.*.sign_time",
    "output.signinoutb.sign_no",
)


class MedinsCodec(HttpKind):
    kind = "medins"
    compare_ignores = MEDINS_IGNORES
    fault_actions = ("medins_error",)

    def read_request(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Meta:
        problems: list[str] = []
        meta: Meta = {}
        doc = jsonbody.load(body, problems, "request body") if method.upper() == "POST" else None
        if isinstance(doc, dict):
            for key in _REQUEST_KEYS:
                if doc.get(key) not in (None, ""):
                    meta[key] = doc[key]
        elif doc is not None:
            problems.append("request body is JSON but not an object")
        if "infno" not in meta:
            tail = path.rstrip("/").rpartition("/")[2].partition("?")[0]
            if tail.isdigit() and len(tail) == 4:
                meta["infno"] = tail
        if problems:
            meta["problems"] = problems
        return meta

    def read_response(self, request: Meta, status: int, headers: Mapping[str, str], body: bytes) -> Meta:
        problems: list[str] = []
        meta: Meta = {}
        doc = jsonbody.load(body, problems, "response body")
        if isinstance(doc, dict):
            if "infcode" in doc:
                code = doc["infcode"]
                meta["infcode"] = code
                meta["infcode_type"] = "string" if isinstance(code, str) else "number"
                meta["ok"] = infcode_ok(code)
            else:
                problems.append("response has no infcode")
            for key in _RESPONSE_KEYS:
                if doc.get(key) not in (None, ""):
                    meta[key] = doc[key]
        elif doc is not None:
            problems.append("response body is JSON but not an object")
        if problems:
            meta["problems"] = problems
        return meta


    def message_type(self, meta: Meta) -> str | None:
        return _text(meta.get("infno"))

    def control_id(self, meta: Meta) -> str | None:
        return _text(meta.get("msgid"))

    def ack_code(self, status: int | None, meta: Meta) -> str | None:
        if meta.get("infcode") is not None:
            return str(meta["infcode"])
        return super().ack_code(status, meta)

    def accepted(self, status: int, meta: Meta) -> bool:
        return status < 400 and bool(infcode_ok(meta.get("infcode")))


def _text(value: object) -> str | None:
    return None if value is None else str(value)


register(MedinsCodec())
