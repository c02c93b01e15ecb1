"""What the HTTP proxy does with one exchange, as plain data (the HTTP sibling of `plan.Plan`).

HTTP fault actions edit an `HttpPlan`; the proxy carries it out. The default plan forwards the request
as received and relays the upstream's response as received. `HttpView` is what rules and actions see
of one HTTP message: its head, its (possibly truncated) body and the kind codec's metadata, with the
body's JSON or XML parsed at most once, and only when a rule asks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class HttpReply:
    """A response the proxy sends itself; only ever built by an explicit fault rule."""

    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes


@dataclass(slots=True)
class HttpPlan:
    delay_s: float = 0.0
    """Wait before forwarding the request (a rule matched the request)."""
    hold_s: float = 0.0
    """Wait before relaying the response (a rule matched the response)."""
    forward: bool = True
    """False: the upstream never sees the request."""
    reply: HttpReply | None = None
    """Sent to the client instead of the upstream's response."""
    reset: bool = False
    """Abort the client's connection (RST) instead of answering."""
    truncate_keep: int | None = None
    """Send the response head and only this many body bytes, then close the connection."""
    malformed: str | None = None
    """Replace the response body with one that does not parse (`cut` | `garbage`)."""
    body_bps: int | None = None
    """Send the response body at this many bytes per second."""
    notes: list[str] = field(default_factory=list)


@dataclass(slots=True)
class HttpView:
    """One HTTP message as fault rules see it (`meta` argument of `FaultEngine.decide`)."""

    kind: str
    method: str
    path: str
    headers: Any
    """The message's `harness.http_wire.Head` (case-insensitive `get`)."""
    body: bytes
    meta: dict[str, Any]
    """The kind codec's metadata (a response's view holds the request's keys too)."""
    status: int | None = None
    request: HttpView | None = None
    body_complete: bool = True
    _json: Any = None
    _json_error: str | None = None
    _xml: Any = None
    _xml_error: str | None = None

    def header(self, name: str) -> str | None:
        return self.headers.get(name) if self.headers is not None else None

    def json(self) -> Any:
        """The body as JSON, or None (the reason in `_json_error`)."""
        if self._json is None and self._json_error is None:
            from harness.codecs import jsonbody

            problems: list[str] = []
            self._json = jsonbody.load(self.body, problems, "body")
            if problems and self._json is None:
                self._json_error = problems[0]
        return self._json

    def xml(self) -> Any:
        """The body as an lxml element via harness.safexml (no DTDs, no entities), or None."""
        if self._xml is None and self._xml_error is None:
            from harness import safexml

            try:
                self._xml = safexml.parse(self.body)
            except ValueError as exc:
                self._xml_error = str(exc)
        return self._xml

    @property
    def soap_version(self) -> str:
        """'1.2' or '1.1': from the metadata, else the Content-Type (application/soap+xml is 1.2)."""
        version = self.meta.get("soap_version")
        if version:
            return str(version)
        ctype = (self.header("Content-Type") or "").lower()
        return "1.2" if "application/soap+xml" in ctype else "1.1"
