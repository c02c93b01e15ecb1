"""Metadata codecs for HTTP kinds, one small module per kind, registered under the kind's name.

A codec pulls cheap metadata out of one HTTP request and its response (FHIR interaction, SOAP action, the
medical-insurance `infno`, ...) for capture rows, fault matching and replay comparison. Codecs never raise on
bad input: what could not be read goes into the `problems` list of the metadata, and the bytes are still
forwarded and captured as received.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

Meta = dict[str, Any]


class HttpCodec(Protocol):
    kind: str

    def request_meta(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Meta:
        """Metadata known before forwarding (fault rules match on it)."""
        ...

    def response_meta(self, request: Meta, status: int, headers: Mapping[str, str], body: bytes) -> Meta:
        """Metadata from the response, given the request's metadata."""
        ...


_REGISTRY: dict[str, HttpCodec] = {}


def register(codec: HttpCodec) -> HttpCodec:
    _REGISTRY[codec.kind] = codec
    return codec


def get(kind: str) -> HttpCodec:
    """The codec for a kind; raises KeyError naming the known kinds."""
    _load()
    try:
        return _REGISTRY[kind]
    except KeyError:
        raise KeyError(f"unknown HTTP kind {kind!r}; known kinds: {', '.join(sorted(_REGISTRY))}") from None


def kinds() -> list[str]:
    _load()
    return sorted(_REGISTRY)


def header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive header lookup over a plain mapping."""
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, val in headers.items():
        if key.lower() == lowered:
            return val
    return None


def path_segments(target: str) -> list[str]:
    """The non-empty segments of a request target's path (origin-form or absolute-form).

    A target urlsplit cannot read (e.g. `//[`) is still a request target: its text before `?` is used.
    """
    try:
        path = urlsplit(target).path
    except ValueError:
        path = target.split("?", 1)[0]
    return [p for p in path.split("/") if p]


def _load() -> None:
    if _REGISTRY:
        return
    from harness.codecs import cdc, fhir, medins, raw, soap  # noqa: F401  (registration side effect)
