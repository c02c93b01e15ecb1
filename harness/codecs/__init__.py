"""HTTP kinds, one small module per kind, registered under the kind's name.

A kind is everything the harness knows about one family of HTTP interfaces, in one place: the cheap
metadata pulled out of a request and its response (FHIR interaction, SOAP action, the
medical-insurance `infno`, ...) for capture rows, fault matching and replay comparison; the summary
columns of its capture rows (`message_type`, `control_id`, the application's answer code and whether
it accepted); the response paths a replay comparison ignores by default (what a server assigns on
every call); and the fault actions made for it. `KINDS` is the one list of them.

Kinds never raise on bad input: what could not be read goes into the `problems` list of the metadata,
and the bytes are still forwarded and captured as received. Metadata is made storable on the way out
(`harness.codecs.storable`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from harness.codecs.storable import storable

Meta = dict[str, Any]

KINDS = ("fhir", "soap", "medins", "cdc", "raw")
"""The HTTP kinds, each a module of this package registering one `HttpKind`."""


class HttpKind:
    """One HTTP kind. Subclasses set `kind` and override the `read_*` methods and what differs."""

    kind = "raw"
    compare_ignores: tuple[str, ...] = ()
    """Response paths (globs over `harness.replay.http_compare` paths) a replay comparison ignores."""
    fault_actions: tuple[str, ...] = ()
    """Fault action types made for this kind (its own error envelope)."""

    # -- metadata (never raises) -------------------------------------------------------------------

    def request_meta(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Meta:
        """Metadata known before forwarding (fault rules match on it)."""
        return _guarded(self.read_request, "request", method, path, headers, body)

    def response_meta(self, request: Meta, status: int, headers: Mapping[str, str], body: bytes) -> Meta:
        """Metadata from the response, given the request's metadata."""
        return _guarded(self.read_response, "response", request, status, headers, body)

    def read_request(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Meta:
        return {}

    def read_response(self, request: Meta, status: int, headers: Mapping[str, str], body: bytes) -> Meta:
        return {}

    # -- summary columns ---------------------------------------------------------------------------

    def message_type(self, meta: Meta) -> str | None:
        """The kind's operation name (medins `infno`, FHIR `create Patient`, ...)."""
        return None

    def control_id(self, meta: Meta) -> str | None:
        """The request's own id (medins `msgid`, ...)."""
        return None

    def ack_code(self, status: int | None, meta: Meta) -> str | None:
        """The application's answer as text; the HTTP status when the kind has no code of its own."""
        return str(status) if status is not None else None

    def accepted(self, status: int, meta: Meta) -> bool:
        """Whether the upstream accepted the request: a non-error status and the kind's own success."""
        return status < 400


def _guarded(read: Callable[..., Meta], what: str, *args: Any) -> Meta:
    try:
        meta = read(*args)
    except Exception as exc:  # noqa: BLE001 - a body must never stop an exchange
        meta = {"problems": [f"{what} metadata not read: {type(exc).__name__}: {str(exc)[:200]}"]}
    return storable(meta)


_REGISTRY: dict[str, HttpKind] = {}


def register(codec: HttpKind) -> HttpKind:
    if codec.kind not in KINDS:
        raise ValueError(f"HTTP kind {codec.kind!r} is not in harness.codecs.KINDS")
    _REGISTRY[codec.kind] = codec
    return codec


def get(kind: str) -> HttpKind:
    """The unit of a kind; raises KeyError naming the known kinds."""
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
    if len(_REGISTRY) == len(KINDS):
        return
    for kind in KINDS:
        importlib.import_module(f"harness.codecs.{kind}")
