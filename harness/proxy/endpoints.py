"""Where a proxy channel listens and how it reaches its upstreams: TCP or TLS, both ways.

Shared by the MLLP and HTTP proxies so a channel's `tls` / `upstream_tls` settings mean the same on
either. Upstream TLS material (trust root, client certificate) is loaded once per channel, not per
connection; the per-connection part is only the server name checked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.endpoints import (
    HostnameEndpoint,
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
    wrapClientTLS,
)

from harness.proxy.config import Address, ListenerTLS, UpstreamTLS


def set_nodelay(transport: Any) -> None:
    """Small replies leave at once (no Nagle delay) where the transport allows it."""
    try:
        transport.setTcpNoDelay(True)
    except Exception:  # noqa: BLE001 - not every transport (e.g. TLS over a test pipe) has it
        pass


def load_certificates(path: Path) -> list[Any]:
    """Every certificate in a PEM file (a CA bundle may hold several)."""
    from twisted.internet import ssl

    data = path.read_bytes()
    certs = []
    marker = b"-----END CERTIFICATE-----"
    for block in data.split(marker)[:-1]:
        certs.append(ssl.Certificate.loadPEM(block + marker + b"\n"))
    if not certs:
        raise ValueError(f"{path}: no PEM certificate found")
    return certs


def server_tls_options(tls: ListenerTLS, protocols: list[bytes] | None = None) -> Any:
    """Options for a TLS listener; with `ca` set, clients must present a certificate it signed.

    `protocols` are the ALPN names offered (an HTTP/1.1-only server offers [b"http/1.1"], so a client
    that proposes h2 first, as curl does, settles on HTTP/1.1 instead of failing the negotiation).
    """
    from twisted.internet import ssl

    cert = ssl.PrivateCertificate.loadPEM(tls.cert.read_bytes() + b"\n" + tls.key.read_bytes())
    kwargs: dict[str, Any] = {"privateKey": cert.privateKey.original, "certificate": cert.original}
    if tls.ca is not None:
        kwargs["trustRoot"] = ssl.trustRootFromCertificates(load_certificates(tls.ca))
    if protocols is not None:
        kwargs["acceptableProtocols"] = protocols
    return ssl.CertificateOptions(**kwargs)


def listen(
    reactor: Any,
    address: Address,
    factory: Any,
    tls: ListenerTLS | None,
    *,
    backlog: int | None = None,
    protocols: list[bytes] | None = None,
) -> Any:
    """Start listening (TLS when configured); returns the port. Raises CannotListenError when taken."""
    extra: dict[str, Any] = {"interface": address.host}
    if backlog is not None:
        extra["backlog"] = backlog
    if tls is None:
        return reactor.listenTCP(address.port, factory, **extra)
    return reactor.listenSSL(address.port, factory, server_tls_options(tls, protocols), **extra)


class UpstreamDialer:
    """Client endpoints to a channel's upstreams, with its connect timeout and upstream TLS."""

    __slots__ = ("reactor", "connect_timeout_s", "tls", "_shared")

    def __init__(self, reactor: Any, *, connect_timeout_s: float, tls: UpstreamTLS | None) -> None:
        self.reactor = reactor
        self.connect_timeout_s = connect_timeout_s
        self.tls = tls
        self._shared = self._client_tls_options() if tls is not None else None

    def _client_tls_options(self) -> Any:
        """What every upstream TLS connection shares: trust root, client certificate (loaded once)."""
        from twisted.internet import ssl

        tls = self.tls
        client_cert = None
        if tls.cert is not None:
            client_cert = ssl.PrivateCertificate.loadPEM(tls.cert.read_bytes() + b"\n" + tls.key.read_bytes())
        if not tls.verify:
            kwargs: dict[str, Any] = {"verify": False}
            if client_cert is not None:
                kwargs.update(privateKey=client_cert.privateKey.original, certificate=client_cert.original)
            return ssl.CertificateOptions(**kwargs)
        trust = ssl.trustRootFromCertificates(load_certificates(tls.ca)) if tls.ca is not None else None
        return (trust, client_cert)

    def tls_for(self, host: str) -> Any:
        """Client TLS options checking `server_name` (else the host connected to)."""
        from twisted.internet import ssl

        tls = self.tls
        if not tls.verify:
            return self._shared
        trust, client_cert = self._shared
        name = tls.server_name or host
        return ssl.optionsForClientTLS(name, trustRoot=trust, clientCertificate=client_cert)

    def endpoint(self, address: Address) -> Any:
        timeout = self.connect_timeout_s
        host = address.host
        if isIPAddress(host):
            ep = TCP4ClientEndpoint(self.reactor, host, address.port, timeout=timeout)
        elif isIPv6Address(host):
            ep = TCP6ClientEndpoint(self.reactor, host, address.port, timeout=timeout)
        else:
            ep = HostnameEndpoint(self.reactor, host, address.port, timeout=timeout)
        if self.tls is not None:
            ep = wrapClientTLS(self.tls_for(host), ep)
        return ep
