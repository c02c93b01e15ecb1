"""TLS of the harness's own clients (send, replay, certify, load): verify the server, and present a
client certificate to a peer that asks for one (mutual TLS, as hospital engines and insurance gateways
often do).

Stdlib `ssl` (gevent's, patched in, under locust); the proxy's TLS (Twisted, listeners and upstreams) is
`harness.tls`, whose checks of the files these share: a file that cannot be used is a `TLSError`
naming which one (`ca`, `client.cert`, `client.key`) and why, when the context is built, before
anything is sent, never an OpenSSL traceback on the first connection.
"""

from __future__ import annotations

import http.client
import ssl
from dataclasses import dataclass
from pathlib import Path

from harness.tls import TLSError, load_certificates, load_identity


@dataclass(frozen=True, slots=True)
class TLSOptions:
    """``ca`` None means the system's trust store; ``verify=False`` trusts any server; ``cert``/``key``
    is the client certificate (the key may be in the cert file); ``server_name`` is the name the
    server's certificate must carry (default: the host connected to)."""

    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    server_name: str | None = None
    verify: bool = True

    def context(self) -> ssl.SSLContext:
        # the files are read and matched here first, so a problem is named as the listeners name it
        if self.ca:
            load_certificates(Path(self.ca), "ca", "CA certificate")
        if self.cert:
            load_identity(Path(self.cert), Path(self.key) if self.key else None, "client")
        elif self.key:
            raise TLSError("client.key", "a client key needs its certificate")
        try:
            ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.ca)
        except (OSError, ssl.SSLError) as exc:
            raise TLSError("ca", f"{self.ca}: {exc}") from None
        if self.cert:
            try:
                ctx.load_cert_chain(self.cert, self.key)
            except (OSError, ssl.SSLError) as exc:
                raise TLSError("client.cert", f"{self.cert}: {exc}") from None
        if not self.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def https_connection(
        self, host: str, port: int, *, timeout: float, context: ssl.SSLContext | None = None
    ) -> http.client.HTTPSConnection:
        """An HTTPS connection with these settings (`context`: one built earlier by `context()`)."""
        return _HTTPSConnection(
            host, port, timeout=timeout, context=context or self.context(), server_name=self.server_name
        )


class _HTTPSConnection(http.client.HTTPSConnection):
    """`http.client`'s HTTPS, checking the certificate against `server_name` when one is given."""

    def __init__(
        self, host: str, port: int, *, timeout: float, context: ssl.SSLContext, server_name: str | None
    ) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self.server_name = server_name or host

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self.server_name)
