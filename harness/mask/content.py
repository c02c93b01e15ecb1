"""Which module masks which content: by kind, or by a look at the content when the kind is `raw`."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from harness.mask.error import MaskError

if TYPE_CHECKING:  # annotations only: importing the masker at run time would be a cycle
    from harness.mask.masker import Masked, Masker, Pass

_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")


def detect(data: bytes | str) -> str:
    """hl7v2, fhir, medins, hl7v3, or json (any other JSON: the medins and cdc field rules together) from
    what the content looks like; MaskError when none fits."""
    head = data[:4096]
    if isinstance(head, bytes):
        for bom in _BOMS:
            if head.startswith(bom):
                head = head[len(bom) :]
        text = head.decode("latin-1")
    else:
        text = head.lstrip("\ufeff")
    stripped = text.lstrip()
    if stripped.startswith(("MSH", "FHS", "BHS", "\x0b")):
        return "hl7v2"
    if stripped.startswith("<"):
        return "hl7v3"
    if stripped.startswith(("{", "[")):
        try:
            doc = json.loads(data if isinstance(data, str) else _json_text(data))
        except ValueError:
            raise MaskError("content starts like JSON but is not valid JSON") from None
        if isinstance(doc, dict) and "resourceType" in doc:
            return "fhir"
        if isinstance(doc, dict) and ("infno" in doc or "infcode" in doc):
            return "medins"
        return "json"
    raise MaskError("content is neither HL7 v2, JSON nor XML, so it cannot be masked")


def _json_text(data: bytes) -> str:
    from harness.mask.jsontext import decode_bytes

    return decode_bytes(data)[0]


def mask(masker: Masker, data: bytes | str, kind: str, pass_: Pass, *, charset: str | None = None) -> Masked:
    if kind.startswith("http:"):
        from harness.mask import http

        if not isinstance(data, bytes):
            raise MaskError("an HTTP message is bytes")
        return http.mask(masker, data, kind[5:], pass_, request=True)
    if kind == "raw":
        kind = detect(data)
    if kind == "hl7v2":
        from harness.mask import hl7v2

        return hl7v2.mask(data, pass_, masker.rules("hl7v2"), charset)
    if kind == "fhir":
        from harness.mask import fhir

        return fhir.mask(data, pass_, masker.rules("fhir"), charset)
    if kind in ("medins", "cdc", "json"):
        from harness.mask import fields

        rules = masker.rules("medins") + masker.rules("cdc") if kind == "json" else masker.rules(kind)
        return fields.mask(data, pass_, rules, charset)
    if kind in ("soap", "hl7v3"):
        from harness.mask import hl7v3

        return hl7v3.mask(data, pass_, masker.rules("hl7v3"), masker.policy.namespaces)
    raise MaskError(f"unknown kind {kind!r}; known kinds: hl7v2, fhir, medins, cdc, soap, hl7v3, raw")
