"""mitmproxy flow files (as mitmproxy 11 writes them, format 21): export exchanges, import flows.

Written and read with mitmproxy's own `mitmproxy.io.FlowWriter` / `FlowReader`, so a capture opens in
mitmweb (`mitmweb --rfile capture.mitm`) and a mitmweb session saved to a file replays here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from harness.interop import HttpPair


def _headers(pairs: list[tuple[str, str]]) -> tuple[tuple[bytes, bytes], ...]:
    return tuple((k.encode("latin-1"), v.encode("latin-1", "replace")) for k, v in pairs)


def to_flow(pair: HttpPair):
    from mitmproxy import connection, http

    client_host, _, client_port = (pair.client_addr or "127.0.0.1:0").rpartition(":")
    client = connection.Client(
        peername=(client_host or "127.0.0.1", int(client_port) if client_port.isdigit() else 0),
        sockname=("127.0.0.1", 0),
        timestamp_start=pair.started_at,
    )
    server = connection.Server(address=(pair.host, pair.port))
    flow = http.HTTPFlow(client, server)
    flow.request = http.Request(
        pair.host, pair.port, pair.method.encode(), pair.scheme.encode(), b"", pair.path.encode("latin-1"),
        pair.http_version.encode(), _headers(pair.request_headers), pair.request_body, None,
        pair.started_at, pair.started_at,
    )  # fmt: skip
    if pair.status is not None:
        ended = pair.ended_at or pair.started_at
        reason = pair.reason.encode("latin-1", "replace")
        flow.response = http.Response(
            b"HTTP/1.1", pair.status, reason, _headers(pair.response_headers), pair.response_body or b"",
            None, ended, ended,
        )  # fmt: skip
    if pair.notes:
        flow.comment = "; ".join(pair.notes)
    return flow


def write(pairs: Iterable[HttpPair], path: Path, *, force: bool = False) -> int:
    """Write the flows to `path`, created 0600 (OutputExists when it exists and not `force`)."""
    from mitmproxy import io

    from harness.private_files import open_private

    count = 0
    with open_private(path, force=force) as fh:
        writer = io.FlowWriter(fh)
        for pair in pairs:
            writer.add(to_flow(pair))
            count += 1
    return count


def from_flow(flow) -> HttpPair:
    req = flow.request
    pair = HttpPair(
        method=req.method,
        path=req.path,
        host=req.host,
        port=req.port,
        scheme=req.scheme,
        http_version=req.http_version if req.http_version.startswith("HTTP/1") else "HTTP/1.1",
        request_headers=[(k, v) for k, v in req.headers.items(multi=True)],
        request_body=req.raw_content or b"",
        started_at=req.timestamp_start,
        client_addr=f"{flow.client_conn.peername[0]}:{flow.client_conn.peername[1]}"
        if flow.client_conn.peername
        else None,
    )
    resp = flow.response
    if resp is not None:
        pair.status = resp.status_code
        pair.reason = resp.reason
        pair.response_headers = [(k, v) for k, v in resp.headers.items(multi=True)]
        pair.response_body = resp.raw_content or b""
        pair.ended_at = resp.timestamp_end or resp.timestamp_start
    elif flow.error is not None:
        pair.notes.append(f"mitmproxy error: {flow.error.msg}")
    return pair


def read(path: Path) -> Iterator[HttpPair]:
    """HTTP flows of a flow file, in order (other flow types are skipped); raises ValueError when the
    file is not a flow file."""
    from mitmproxy import http, io
    from mitmproxy.exceptions import FlowReadException

    with open(path, "rb") as fh:
        try:
            for flow in io.FlowReader(fh).stream():
                if isinstance(flow, http.HTTPFlow):
                    yield from_flow(flow)
        except FlowReadException as exc:
            raise ValueError(f"{path}: not a mitmproxy flow file: {exc}") from None
