"""The row codec: an `Exchange` as the parameters of an INSERT, and a stored row back as an `Exchange`.

Capturing never depends on text: bodies are stored as bytes whatever they hold, and metadata that is
not text is stored with U+FFFD and a note, never refused.
"""

from __future__ import annotations

import json
import operator
import os
import re
from collections.abc import Sequence
from typing import Any

from harness.exchange import Exchange
from harness.store.crypto import (
    _AAD_COLUMN,
    HOW_TO_GIVE,
    NONCE_BYTES,
    StoreIntegrityError,
    StoreKeyError,
    row_aad,
)

# Exchange fields as stored, in column order (id aside).
_FIELDS = (
    "channel", "protocol", "kind", "started_at", "ended_at", "latency_ms", "client_addr",
    "upstream_addr", "request", "response", "outcome", "ack_code", "message_type", "control_id",
    "charset", "fault", "method", "path", "status", "meta", "run_id", "original_id", "error", "notes",
    "accept_ack_code", "accept_response", "proxy",
)  # fmt: skip
_COLUMNS = (*_FIELDS, "key_id")
"""The stored columns: the exchange's fields, then the id of the key its bodies are sealed with (NULL:
in clear; see `harness.store.crypto`), which the backend sets and reads, never the exchange."""
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


_ROW = operator.attrgetter(*_FIELDS)
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
    row.append(None)  # key_id: the backend seals the bodies
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
    texts = "".join([value for value in row if value.__class__ is str])  # the bodies are bytes by now
    if "\x00" in texts or not texts.isascii():  # the usual row is all ASCII: no column to look at alone
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
_TEXT_COLUMNS = tuple(i for i, name in enumerate(_FIELDS) if name not in _BODY_COLUMNS)


def _storable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _from_row(columns: Sequence[str], row: Sequence[Any]) -> Exchange:
    ex = Exchange()
    for name, value in zip(columns, row, strict=True):
        if name == "key_id":
            continue
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


# -- bodies sealed at rest (harness.store.crypto) ------------------------------------------------

_KEY_ID = _COLUMNS.index("key_id")
_DEDUPE_COLUMNS = ("id", "key_id", "channel", "started_at", "control_id", "request")
"""What a writer started again reads to find a row its dead predecessor may have committed."""


def stored_match(candidates: Sequence[Sequence[Any]], request: bytes, opener: Any) -> int | None:
    """The id of the first stored row (read as `_DEDUPE_COLUMNS`) whose request, opened, is `request`:
    sealed bodies differ in every write (a fresh nonce), so they are compared in clear."""
    for stored in candidates:
        try:
            if opener(stored)[5] == request:
                return stored[0]
        except (StoreKeyError, StoreIntegrityError):  # a row that does not open is not this one
            continue
    return None


_SEALED_AT = tuple((_COLUMNS.index(name), name) for name in ("request", "response", "accept_response"))


def seal_row(row: tuple, key: Any) -> tuple:
    """A codec row with its bodies sealed by `key` (a `crypto.StoreKey`), bound to the row's channel,
    start time and control id, and its key id set."""
    out = list(row)
    tail = row_aad(row[_CHANNEL], row[_STARTED], row[_CONTROL_ID])
    nonces = os.urandom(NONCE_BYTES * len(_SEALED_AT))  # one draw for the row's bodies, split below
    for n, (i, name) in enumerate(_SEALED_AT):
        value = out[i]
        if value is not None:
            nonce = nonces[n * NONCE_BYTES : (n + 1) * NONCE_BYTES]
            out[i] = key.seal(value, _AAD_COLUMN[name] + tail, nonce)
    out[_KEY_ID] = key.id
    return tuple(out)


def seal_rows(rows: list[tuple | BaseException], key: Any) -> list[tuple | BaseException]:
    """The writer's batch with every row sealed (`_Update` rows too); None key: the batch as it is."""
    if key is None:
        return rows
    out: list[tuple | BaseException] = []
    for row in rows:
        try:
            if isinstance(row, _Update):
                out.append(_Update(row[0], row[1], seal_row(row[2], key)))
            elif isinstance(row, tuple):
                out.append(seal_row(row, key))
            else:
                out.append(row)
        except (TypeError, ValueError, OverflowError) as exc:  # a body that is not bytes
            out.append(exc)
    return out


def _missing_key(kid: str, where: str, exchange: Any) -> StoreKeyError:
    return StoreKeyError(
        f"capture store {where} is encrypted (key id {kid}, exchange {exchange}); give its key with "
        f"{HOW_TO_GIVE}"
    )


def _not_opening(kid: str, column: str, where: str, exchange: Any) -> StoreIntegrityError:
    return StoreIntegrityError(
        f"capture store {where}: exchange {exchange}: its {column} does not open with key {kid}: "
        "changed on disk, or moved from another exchange or column; the store's integrity is in doubt"
    )


class RowOpener:
    """Opens the sealed bodies of rows read as `columns` (with `id` and `key_id` among them)."""

    __slots__ = ("_at", "_kid", "_id", "_meta", "_keys", "_where")

    def __init__(self, columns: Sequence[str], keys: Any, where: str) -> None:
        index = {name: i for i, name in enumerate(columns)}
        self._kid = index.get("key_id")
        self._id = index.get("id")
        self._at = [(index[name], name) for _, name in _SEALED_AT if name in index]
        self._meta = tuple(index.get(name) for name in ("channel", "started_at", "control_id"))
        self._keys = keys
        self._where = where

    def __call__(self, row: Sequence[Any]) -> Sequence[Any]:
        """The row with its bodies in clear; StoreKeyError when the key that sealed it is not held,
        StoreIntegrityError when a body does not open (both naming the exchange)."""
        kid = row[self._kid] if self._kid is not None else None
        if kid is None or not self._at:
            return row
        exchange = row[self._id] if self._id is not None else "?"
        key = self._keys.get(kid) if self._keys is not None else None
        if key is None:
            raise _missing_key(kid, self._where, exchange)
        tail = row_aad(*(row[i] if i is not None else None for i in self._meta))
        out = list(row)
        for i, name in self._at:
            value = row[i]
            if value is not None:
                plain = key.open(value, _AAD_COLUMN[name] + tail)
                if plain is None:
                    raise _not_opening(kid, name, self._where, exchange)
                out[i] = plain
        return out
