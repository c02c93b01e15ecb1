"""The HTTP `Sender`: re-sends a captured HTTP request (head + body as stored) to a new base URL.

The stored request is read with `harness.http_wire` (chunked bodies decoded, a truncated capture
refused rather than sent half), re-targeted (Host set to the target, hop-by-hop headers dropped,
Content-Length recomputed) and sent over one keep-alive connection (http.client). The response is
stored as head + decoded body, readable the same way. One sender per worker thread, as for MLLP.
"""

from __future__ import annotations

import http.client
import ssl
import time
from urllib.parse import urlsplit

from harness.client_tls import TLSOptions
from harness.http_wire import HttpError, build_head, forward_headers, read_message
from harness.replay.sender import SenderFactory, Sent

_DROP = ("host", "content-length", "transfer-encoding", "expect")


def parse_target(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of `http://HOST:PORT` / `https://HOST:PORT`; ValueError otherwise."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"--to {url!r}: expected http://HOST:PORT or https://HOST:PORT")
    if parts.path not in ("", "/") or parts.query:
        raise ValueError(f"--to {url!r}: give only scheme://HOST:PORT (the captured paths are kept)")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ValueError(f"--to {url!r}: bad port") from None
    return parts.scheme, parts.hostname, port


class HTTPSender:
    protocol = "http"

    def __init__(self, url: str, *, timeout: float = 10.0, tls: TLSOptions | None = None) -> None:
        self.scheme, self.host, self.port = parse_target(url)
        self.target = f"{self.scheme}://{self.host}:{self.port}"
        self.timeout = timeout
        self._tls = tls or TLSOptions()
        self._context: ssl.SSLContext | None = self._tls.context() if self.scheme == "https" else None
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self._context is not None:
                self._conn = self._tls.https_connection(
                    self.host, self.port, timeout=self.timeout, context=self._context
                )
            else:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return self._conn

    def send(self, payload: bytes, *, control_id: str | None = None, charset: str | None = None) -> Sent:
        started = time.time()
        try:
            msg = read_message(payload, request=True)
        except HttpError as exc:
            return Sent(
                started, time.time(), None, "error", error=f"not sent: stored request unreadable: {exc}"
            )
        if not msg.complete:
            return Sent(
                started,
                time.time(),
                None,
                "error",
                error="not sent: the capture holds only part of this request's body",
            )
        head = msg.head
        headers = forward_headers(head, drop=_DROP)
        netloc = self.host if self.port in (80, 443) else f"{self.host}:{self.port}"
        notes: list[str] = []
        for attempt in (1, 2):
            conn = self._connection()
            reused = conn.sock is not None
            t0 = time.perf_counter()
            try:
                conn.putrequest(head.method, head.target, skip_host=True, skip_accept_encoding=True)
                conn.putheader("Host", netloc)
                for name, value in headers:
                    conn.putheader(name, value)
                if msg.body or head.method in ("POST", "PUT", "PATCH"):
                    conn.putheader("Content-Length", str(len(msg.body)))
                conn.endheaders(msg.body or None)
                resp = conn.getresponse()
                body = resp.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                self.close()
                if reused and attempt == 1:
                    notes.append("reconnected")
                    continue
                return Sent(
                    started, time.time(), None, "upstream_down", error=f"{self.target}: {exc}", notes=notes
                )
            except TimeoutError:
                self.close()
                return Sent(
                    started,
                    time.time(),
                    None,
                    "timeout",
                    error=f"{self.target}: no response within {self.timeout:g} s",
                    notes=notes,
                )
            except (ConnectionRefusedError, OSError) as exc:
                self.close()
                return Sent(
                    started,
                    time.time(),
                    None,
                    "upstream_down",
                    error=f"{self.target}: {exc}",
                    notes=notes,
                    unreachable=not reused,
                )
            except http.client.HTTPException as exc:
                self.close()
                return Sent(
                    started,
                    time.time(),
                    None,
                    "error",
                    error=f"{self.target}: bad response: {exc}",
                    notes=notes,
                )
            latency = (time.perf_counter() - t0) * 1000.0
            out_headers = [
                (k, v)
                for k, v in resp.getheaders()
                if k.lower() not in ("transfer-encoding", "content-length")
            ]
            out_headers.append(("Content-Length", str(len(body))))
            response = build_head(f"HTTP/1.1 {resp.status} {resp.reason}", out_headers) + body
            if resp.will_close:
                self.close()
            return Sent(
                started_at=started,
                ended_at=time.time(),
                response=response,
                outcome="ok" if resp.status < 400 else "nak",
                ack_code=str(resp.status),
                latency_ms=latency,
                notes=notes,
            )
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def http_factory(url: str, *, timeout: float = 10.0, tls: TLSOptions | None = None) -> SenderFactory:
    """A factory of HTTP senders to a base URL (raises ValueError for a bad URL, or TLS settings for an
    http:// one, before any send)."""
    if parse_target(url)[0] != "https" and tls is not None:
        raise ValueError(f"--to {url}: TLS options need an https:// target")
    return lambda: HTTPSender(url, timeout=timeout, tls=tls)
