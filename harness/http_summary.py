"""One captured HTTP exchange's summary fields, from its kind (sans-IO).

The capture row of an HTTP exchange carries the same summary columns as an HL7 v2 one, so listings,
filters and reports need no HTTP branch: `message_type` is the kind's operation (medins `infno`, FHIR
`create Patient`, SOAP action or HL7 v3 interaction, CDC table), `control_id` the request's own id
(medins `msgid`), `ack_code` the application's answer (medins `infcode`, FHIR HTTP status, MCCI
acknowledgement code or SOAP fault code, CDC `result`), and `outcome` ok / nak by that answer. What
each kind says lives in its unit under `harness.codecs`; these are the entry points by kind name.
"""

from __future__ import annotations

from typing import Any

from harness import codecs


def message_type(kind: str, meta: dict[str, Any]) -> str | None:
    return codecs.get(kind).message_type(meta)


def control_id(kind: str, meta: dict[str, Any]) -> str | None:
    return codecs.get(kind).control_id(meta)


def ack_code(kind: str, status: int | None, meta: dict[str, Any]) -> str | None:
    """The application's answer as text (None when the response did not say)."""
    return codecs.get(kind).ack_code(status, meta)


def accepted(kind: str, status: int, meta: dict[str, Any]) -> bool:
    """Whether the upstream accepted the request: a non-error status and the kind's own success."""
    return codecs.get(kind).accepted(status, meta)


def response_outcome(kind: str, status: int, meta: dict[str, Any]) -> str:
    return "ok" if accepted(kind, status, meta) else "nak"
