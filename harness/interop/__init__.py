"""Interop with the HTTP tools engineers already use: mitmproxy flow files and HAR.

Both formats hold one request and its response per entry, like an exchange, so conversion goes through
one plain value, `HttpPair`: `from_exchange` reads a captured exchange's stored bytes with
`harness.http_wire`, `to_exchange` turns an imported pair back into an exchange with the kind codec's
metadata and the same summary columns the proxy writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness import codecs, http_summary
from harness.exchange import Exchange
from harness.http_wire import HttpError, build_head, read_message


@dataclass(slots=True)
class HttpPair:
    method: str
    path: str
    host: str
    port: int
    scheme: str = "http"
    http_version: str = "HTTP/1.1"
    request_headers: list[tuple[str, str]] = field(default_factory=list)
    request_body: bytes = b""
    status: int | None = None
    reason: str = ""
    response_headers: list[tuple[str, str]] = field(default_factory=list)
    response_body: bytes | None = None
    started_at: float = 0.0
    ended_at: float | None = None
    client_addr: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        default = 443 if self.scheme == "https" else 80
        netloc = self.host if self.port == default else f"{self.host}:{self.port}"
        return f"{self.scheme}://{netloc}{self.path}"


def _host_port(value: str | None, fallback: str | None) -> tuple[str, int]:
    text = value or fallback or "localhost:80"
    host, sep, port = text.rpartition(":")
    if sep and port.isdigit() and "]" not in port:
        return host.strip("[]"), int(port)
    return text.strip("[]"), 80


def from_exchange(ex: Exchange) -> HttpPair:
    """The pair of a captured HTTP exchange; raises HttpError when its request is not HTTP."""
    req = read_message(ex.request, request=True)
    host, port = _host_port(req.head.get("Host"), ex.upstream_addr)
    pair = HttpPair(
        method=req.head.method,
        path=req.head.target,
        host=host,
        port=port,
        http_version=req.head.version,
        request_headers=[(k, v) for k, v in req.head.headers if k.lower() != "transfer-encoding"],
        request_body=req.body,
        started_at=ex.started_at,
        ended_at=ex.ended_at,
        client_addr=ex.client_addr,
    )
    if not req.complete:
        pair.notes.append("request body truncated in the capture")
    if ex.response:
        try:
            resp = read_message(ex.response, request=False, request_method=pair.method)
        except HttpError as exc:
            pair.notes.append(f"response not readable: {exc}")
        else:
            pair.status = resp.head.status
            pair.reason = resp.head.reason
            pair.response_headers = [(k, v) for k, v in resp.head.headers if k.lower() != "transfer-encoding"]
            pair.response_body = resp.body
            if not resp.complete:
                pair.notes.append("response body truncated in the capture")
    return pair


def _with_length(headers: list[tuple[str, str]], body: bytes, needed: bool) -> list[tuple[str, str]]:
    out = [(k, v) for k, v in headers if k.lower() not in ("transfer-encoding", "content-length")]
    if body or needed:
        out.append(("Content-Length", str(len(body))))
    return out


def to_exchange(pair: HttpPair, *, channel: str, kind: str) -> Exchange:
    """An exchange holding the pair as stored bytes (head + body, Content-Length set), with metadata."""
    codec = codecs.get(kind)
    req_headers = _with_length(
        pair.request_headers, pair.request_body, pair.method in ("POST", "PUT", "PATCH")
    )
    request = build_head(f"{pair.method} {pair.path} {pair.http_version}", req_headers) + pair.request_body
    meta = codec.request_meta(pair.method, pair.path, dict(req_headers), pair.request_body)
    ex = Exchange(
        channel=channel,
        protocol="http",
        kind=kind,
        started_at=pair.started_at,
        client_addr=pair.client_addr,
        upstream_addr=f"{pair.host}:{pair.port}",
        request=request,
        method=pair.method,
        path=pair.path,
        message_type=http_summary.message_type(kind, meta),
        control_id=http_summary.control_id(kind, meta),
        notes=list(pair.notes),
    )
    if pair.status is None:
        ex.outcome = "error"
        ex.error = "no response in the imported entry"
        ex.meta = meta
    else:
        body = pair.response_body or b""
        headers = _with_length(pair.response_headers, body, True)
        ex.response = build_head(f"HTTP/1.1 {pair.status} {pair.reason or 'Status'}", headers) + body
        ex.status = pair.status
        resp_meta = codec.response_meta(meta, pair.status, dict(headers), body)
        ex.meta = {**meta, **resp_meta}
        ex.ack_code = http_summary.ack_code(kind, pair.status, resp_meta)
        ex.outcome = http_summary.response_outcome(kind, pair.status, resp_meta)
    if pair.ended_at is not None:
        ex.finish(pair.ended_at)
    return ex
