"""A captured exchange masked: its request, response and accept ACK, and the columns derived from them.

All bodies of one exchange are one masking unit: a value masked in the response (a FHIR server's echo,
a 1101 answer's `certno`) is swept out of the request too, and the other way round. Columns that can
hold identifiers are re-derived from the masked bodies (HTTP `path`, the kind's `meta`, message type
and control id) or swept (`error`, `notes`, the fault record, metadata the proxy added). A body that
cannot be masked (malformed HL7, JSON cut short by `capture_body_bytes`, an unknown Content-Encoding) is
withheld, never passed on unmasked: it is emptied and a note on the exchange says which and why.
"""

from __future__ import annotations

import copy
from dataclasses import replace

from harness import codecs, http_summary
from harness.exchange import Exchange
from harness.mask.masker import Masked, Masker, MaskError

BODIES = ("request", "response", "accept_response")


def withheld_note(name: str, reason: str) -> str:
    return f"masked: {name} withheld, it could not be masked ({reason})"


def withheld(ex: Exchange, name: str) -> bool:
    """Whether masking withheld this body of the exchange."""
    return any(note.startswith(f"masked: {name} withheld") for note in ex.notes)


def mask_exchange(masker: Masker, ex: Exchange) -> Exchange:
    """A masked copy of `ex` (the original is not changed)."""
    out = replace(ex, meta=copy.deepcopy(ex.meta), fault=copy.deepcopy(ex.fault), notes=list(ex.notes))
    pass_ = masker.new_pass()
    http = ex.protocol == "http"
    staged: dict[str, Masked] = {}
    withheld: list[str] = []
    for name in BODIES:
        data = getattr(ex, name)
        if not data:
            continue
        try:
            if http:
                from harness.mask import http as http_mask

                method = _method(ex)
                staged[name] = http_mask.mask(
                    masker, data, ex.kind, pass_, request=name == "request", request_method=method
                )
            else:
                staged[name] = masker.structure(data, ex.kind, pass_, charset=ex.charset)
        except MaskError as exc:
            setattr(out, name, b"" if name == "request" else None)
            out.notes.append(withheld_note(name, str(exc)))
            withheld.append(name)
    repl = pass_.replacements
    for name, masked in staged.items():
        rendered = masked.render(repl)
        setattr(
            out, name, rendered if isinstance(rendered, bytes) else rendered.encode(ex.charset or "utf-8")
        )
    out.notes = [n if n.startswith("masked: ") else repl.sweep(n) for n in out.notes]
    out.error = repl.sweep(out.error) if out.error else out.error
    out.fault = repl.sweep_value(out.fault)
    out.meta = repl.sweep_value(out.meta)
    if http:
        _rederive_http(out, withheld)
    return out


def _method(ex: Exchange) -> str:
    if ex.method:
        return ex.method
    return ex.request.split(b" ", 1)[0].decode("latin-1") if ex.request else "GET"


def _rederive_http(ex: Exchange, withheld: list[str]) -> None:
    """Path, metadata, message type and control id read again from the masked messages, as the proxy
    reads them from live traffic; what a withheld body said is gone from them too."""
    from harness.http_wire import HttpError, read_message

    try:
        codec = codecs.get(ex.kind)
    except KeyError:
        return
    derived: dict = {}
    if "request" in withheld:
        ex.path = None
    elif ex.request:
        try:
            req = read_message(ex.request, request=True)
        except HttpError:
            req = None
        if req is not None:
            ex.path = req.head.target
            derived.update(codec.request_meta(req.head.method, req.head.target, req.head.mapping(), req.body))
    if ex.response and "response" not in withheld:
        try:
            resp = read_message(ex.response, request=False, request_method=ex.method or "GET")
        except HttpError:
            resp = None
        if resp is not None:
            derived.update(codec.response_meta(derived, resp.head.status, resp.head.mapping(), resp.body))
    if "response" in withheld:
        for key in ("err_msg", "warn_msg", "issues", "reasons", "fault_string", "ack_text"):
            ex.meta.pop(key, None)
    ex.meta.update(derived)
    ex.message_type = http_summary.message_type(ex.kind, ex.meta) or ex.message_type
    control = http_summary.control_id(ex.kind, ex.meta)
    ex.control_id = control if control is not None else (None if "request" in withheld else ex.control_id)
