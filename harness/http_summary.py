"""One captured HTTP exchange's summary fields, from the kind codec's metadata (sans-IO).

The capture row of an HTTP exchange carries the same summary columns as an HL7 v2 one, so listings,
filters and reports need no HTTP branch: `message_type` is the kind's operation (medins `infno`, FHIR
`create Patient`, SOAP action or HL7 v3 interaction, CDC table), `control_id` the request's own id
(medins `msgid`), `ack_code` the application's answer (medins `infcode`, FHIR HTTP status, MCCI
acknowledgement code or SOAP fault code, CDC `result`), and `outcome` ok / nak by that answer.
"""

from __future__ import annotations

from typing import Any


def message_type(kind: str, meta: dict[str, Any]) -> str | None:
    if kind == "medins":
        value = meta.get("infno")
    elif kind == "fhir":
        parts = [meta.get("interaction"), meta.get("resource_type")]
        value = " ".join(str(p) for p in parts if p) or None
    elif kind == "soap":
        value = (
            meta.get("action") or meta.get("interaction") or meta.get("soap_action") or meta.get("operation")
        )
    elif kind == "cdc":
        value = meta.get("table")
    else:
        value = None
    return None if value is None else str(value)


def control_id(kind: str, meta: dict[str, Any]) -> str | None:
    if kind == "medins":
        value = meta.get("msgid")
    elif kind == "fhir":
        value = meta.get("id")
    elif kind == "cdc":
        value = meta.get("serial_number")
    else:
        value = None
    return None if value is None else str(value)


def ack_code(kind: str, status: int | None, meta: dict[str, Any]) -> str | None:
    """The application's answer as text (None when the response did not say)."""
    if kind == "medins" and meta.get("infcode") is not None:
        return str(meta["infcode"])
    if kind == "soap":
        if meta.get("fault_code"):
            return str(meta["fault_code"])
        if meta.get("ack_code"):
            return str(meta["ack_code"])
    if kind == "cdc" and "result" in meta:
        return (
            "true" if meta["result"] is True else "false" if meta["result"] is False else str(meta["result"])
        )
    return str(status) if status is not None else None


def accepted(kind: str, status: int, meta: dict[str, Any]) -> bool:
    """Whether the upstream accepted the request: a non-error status and the kind's own success."""
    if status >= 400:
        return False
    if kind == "medins":
        code = meta.get("infcode")
        if code is None:
            return False
        try:
            return int(str(code).strip()) == 0
        except ValueError:
            return False
    if kind == "soap":
        if meta.get("fault_code"):
            return False
        return meta.get("ack_code") in (None, "AA", "CA")
    if kind == "cdc":
        return meta.get("result") is True
    return True


def response_outcome(kind: str, status: int, meta: dict[str, Any]) -> str:
    return "ok" if accepted(kind, status, meta) else "nak"
