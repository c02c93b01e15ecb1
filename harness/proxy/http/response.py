"""What the client gets for a response the proxy held, as bytes (sans-IO).

The relay case forwards the head as received (hop-by-hop headers dropped, `Connection: close` added
when the client's connection ends after it) and the body's wire bytes untouched. A fault plan may
instead make the body unparseable (`malformed`: a complete message, Content-Length adjusted), cut it
(`truncate`: the head still announces the full length, the connection closes after the part), or
send it unchanged but late or slowly (`hold_s`, `body_bps`). The shell only writes what this returns.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.http_wire import Head, build_head, forward_headers
from harness.proxy.faults.actions.http.malformed import malform
from harness.proxy.faults.http_plan import HttpPlan


@dataclass(slots=True)
class Rendered:
    data: bytes
    """Head and body bytes for the client."""
    close: bool
    """The client's connection closes after these bytes."""
    edited: bool = False
    """The body differs from the upstream's (the exchange's outcome is then `fault`)."""
    bps: int | None = None
    hold_s: float = 0.0


def delimited_by_close(head: Head, method: str) -> bool:
    """A response whose body ends only when the connection does (no length, not chunked)."""
    no_body = method == "HEAD" or head.status in (204, 304) or head.status < 200
    return not no_body and head.content_length is None and not head.chunked


def relay_head(head: Head, *, close: bool) -> bytes:
    """The head for the client: as received when nothing is dropped or added."""
    headers = forward_headers(head)
    if close:
        headers.append(("Connection", "close"))
    elif len(headers) == len(head.headers):
        return head.raw + b"\r\n\r\n"
    return build_head(head.start, headers)


def sized_head(head: Head, length: int, *, close: bool) -> bytes:
    """The head with a new Content-Length (and no Transfer-Encoding): for a body the proxy rewrote."""
    headers = [
        (k, v) for k, v in forward_headers(head) if k.lower() not in ("content-length", "transfer-encoding")
    ]
    headers.append(("Content-Length", str(length)))
    if close:
        headers.append(("Connection", "close"))
    return build_head(head.start, headers)


def render(
    plan: HttpPlan | None, head: Head, body: bytes, raw_body: bytes, *, method: str, close: bool
) -> Rendered:
    """The client's bytes for a held response: relayed, or edited as the plan says.

    `body` is the decoded payload, `raw_body` its wire bytes (chunk framing included); `close` whether
    the client's connection ends after this response anyway.
    """
    close = close or delimited_by_close(head, method)
    if plan is not None and plan.malformed is not None:
        new_body = malform(body, plan.malformed)
        return Rendered(sized_head(head, len(new_body), close=close) + new_body, close, edited=True)
    if plan is not None and plan.truncate_keep is not None:
        keep = len(body) // 2 if plan.truncate_keep < 0 else min(plan.truncate_keep, len(body))
        return Rendered(sized_head(head, len(body), close=True) + body[:keep], True, edited=True)
    bps = plan.body_bps if plan is not None else None
    hold = plan.hold_s if plan is not None else 0.0
    return Rendered(relay_head(head, close=close) + raw_body, close, bps=bps, hold_s=hold)
