"""The row codec: an `Exchange` as the parameters of an INSERT, and a stored row back as an `Exchange`.

Capturing never depends on text: bodies are stored as bytes whatever they hold, and metadata that is
not text is stored with U+FFFD and a note, never refused.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Sequence
from typing import Any

from harness.exchange import Exchange

# Exchange fields as stored, in column order (id aside).
_COLUMNS = (
    "channel", "protocol", "kind", "started_at", "ended_at", "latency_ms", "client_addr",
    "upstream_addr", "request", "response", "outcome", "ack_code", "message_type", "control_id",
    "charset", "fault", "method", "path", "status", "meta", "run_id", "original_id", "error", "notes",
    "accept_ack_code", "accept_response", "proxy",
)  # fmt: skip
_JSON_COLUMNS = frozenset({"fault", "meta", "notes"})
_BODY_COLUMNS = frozenset({"request", "response", "accept_response"})
INSERT = f"INSERT INTO exchanges ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
"""One exchange's INSERT, with `?` parameters (a backend whose driver spells them otherwise translates)."""
UPDATE = f"UPDATE exchanges SET {', '.join(f'{c} = ?' for c in _COLUMNS)} WHERE id = ?"


class _Update(tuple):
    """A row that completes an exchange stored earlier: (target id or None, batch index or None, row).

    The target is the id of the row it replaces, or, when that row is in the same batch and has no id
    yet, its index in the batch. A target that was never stored (its insert failed) is inserted.
    """

    __slots__ = ()

    def __new__(cls, target: int | None, index: int | None, row: tuple) -> _Update:
        return tuple.__new__(cls, (target, index, row))

    def __getnewargs__(self) -> tuple:  # pickled for the writer process
        return tuple(self)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


_ROW = operator.attrgetter(*_COLUMNS)
_FAULT, _META, _NOTES = (_COLUMNS.index(name) for name in ("fault", "meta", "notes"))
_REQUEST, _RESPONSE = _COLUMNS.index("request"), _COLUMNS.index("response")
_ACCEPT_RESPONSE = _COLUMNS.index("accept_response")
_CHANNEL, _STARTED, _CONTROL_ID = (_COLUMNS.index(c) for c in ("channel", "started_at", "control_id"))
_META_JSON: dict[tuple, str] = {}
"""meta dicts of strings seen lately -> their JSON: a channel's messages mostly share the same few."""


def _meta_json(meta: dict[str, Any] | None) -> str:
    if not meta:
        return "{}"
    key = tuple(meta.items())
    for _, value in key:
        if value.__class__ is not str:  # 1 == True == 1.0 as keys: cache strings only
            return _dumps(meta)
    text = _META_JSON.get(key)
    if text is None:
        text = _dumps(meta)
        if len(_META_JSON) >= 256:
            _META_JSON.clear()
        _META_JSON[key] = text
    return text


def _to_row(ex: Exchange) -> tuple:
    """The exchange as an INSERT's parameters: one C-level attribute fetch, JSON only where needed.

    Capturing never depends on text: bodies are stored as bytes whatever they hold, and a metadata
    string that cannot be stored as text (a lone surrogate from bytes that decoded as nothing, a JSON
    "\\ud800", a NUL) is stored with U+FFFD in its place and a note saying so, never refused.
    """
    row = list(_ROW(ex))
    fault = row[_FAULT]
    if fault is not None:
        row[_FAULT] = _dumps(fault)
    row[_META] = _meta_json(row[_META])
    notes = row[_NOTES]
    row[_NOTES] = _dumps(list(notes)) if notes else "[]"
    for i in (_REQUEST, _RESPONSE, _ACCEPT_RESPONSE):
        value = row[i]
        if value is not None and value.__class__ is not bytes:
            row[i] = bytes(value)
    replaced = False
    for i in _TEXT_COLUMNS:
        value = row[i]
        if value.__class__ is str and ("\x00" in value or (not value.isascii() and not _storable(value))):
            row[i] = _SURROGATES.sub("\ufffd", value)
            replaced = True
    if replaced:
        notes = json.loads(row[_NOTES])
        notes.append(_REPLACED_NOTE)
        row[_NOTES] = _SURROGATES.sub("\ufffd", _dumps(notes))
    return tuple(row)


_SURROGATES = re.compile("[\x00\ud800-\udfff]")
"""What no backend stores as text: lone surrogates (bytes that decoded as nothing) and NUL, which
PostgreSQL's text refuses; replaced in metadata the same way whichever backend stores it."""
_REPLACED_NOTE = "metadata held characters that are not text (undecodable bytes or NUL); stored as U+FFFD"
_TEXT_COLUMNS = tuple(
    i for i, name in enumerate(_COLUMNS) if name not in ("request", "response", "accept_response")
)


def _storable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _from_row(columns: Sequence[str], row: Sequence[Any]) -> Exchange:
    ex = Exchange()
    for name, value in zip(columns, row, strict=True):
        if name in _JSON_COLUMNS:
            value = json.loads(value) if value is not None else None
            if name == "meta" and value is None:
                value = {}
            elif name == "notes" and value is None:
                value = []
        elif name == "request" and value is None:
            value = b""
        setattr(ex, name, value)
    return ex
