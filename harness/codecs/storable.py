"""Metadata made fit for the capture store: text SQLite can encode, bounded depth and size.

Metadata comes from bodies nobody vetted: a JSON `"\ud800"` is a lone surrogate that no UTF-8 encoder
takes, a value copied from a body can be nested hundreds of levels deep or megabytes long. What
cannot be stored as it is gets replaced (U+FFFD, a cut, a placeholder) and the metadata's `problems`
list says so once per kind of change; the request and response bytes themselves are stored as they
crossed the wire, untouched.
"""

from __future__ import annotations

import math
import re
from typing import Any

MAX_DEPTH = 16
"""Containers nested deeper than this inside one metadata value are replaced by a placeholder."""
MAX_TEXT = 4096
"""Characters kept of one metadata text value."""
MAX_ITEMS = 1000
"""Items kept of one metadata list or object."""

_SURROGATE = re.compile("[\ud800-\udfff]")


def storable(meta: dict[str, Any]) -> dict[str, Any]:
    """`meta` with every value storable; the changes noted in `meta["problems"]`."""
    if _plain(meta):
        return meta
    notes: set[str] = set()
    clean = _clean(meta, 0, notes)
    if not isinstance(clean, dict):  # pragma: no cover - a dict stays a dict
        clean = {}
    if notes:
        problems = clean.get("problems")
        problems = list(problems) if isinstance(problems, list) else []
        problems.extend(sorted(notes))
        clean["problems"] = problems
    return clean


def _plain(meta: dict[str, Any]) -> bool:
    """Short ASCII-or-clean text and plain scalars only (the usual case): nothing to change."""
    for value in meta.values():
        cls = value.__class__
        if cls is str:
            if len(value) > MAX_TEXT or not value.isascii() and _SURROGATE.search(value) is not None:
                return False
        elif not (value is None or cls is int or cls is bool):
            return False
    return True


def _clean(value: Any, depth: int, notes: set[str]) -> Any:
    if isinstance(value, str):
        return _text(value, notes)
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        notes.add("metadata held a number that is not finite; stored as text")
        return repr(value)
    if isinstance(value, (dict, list, tuple)):
        if depth >= MAX_DEPTH:
            notes.add(f"metadata value nested deeper than {MAX_DEPTH} levels; replaced by a placeholder")
            return f"(nested deeper than {MAX_DEPTH} levels)"
        if len(value) > MAX_ITEMS:
            notes.add(f"metadata value with more than {MAX_ITEMS} items; cut")
        if isinstance(value, dict):
            items = list(value.items())[:MAX_ITEMS]
            return {_text(str(k), notes): _clean(v, depth + 1, notes) for k, v in items}
        return [_clean(v, depth + 1, notes) for v in list(value)[:MAX_ITEMS]]
    notes.add(f"metadata held a {type(value).__name__}; stored as text")
    return _text(repr(value), notes)


def _text(value: str, notes: set[str]) -> str:
    if len(value) > MAX_TEXT:
        notes.add(f"metadata text longer than {MAX_TEXT} characters; cut")
        value = value[:MAX_TEXT] + "…"
    if _SURROGATE.search(value) is not None:
        notes.add("metadata text held lone surrogates (not storable); replaced with U+FFFD")
        value = _SURROGATE.sub("\ufffd", value)
    return value
