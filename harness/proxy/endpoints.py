"""Where a proxy channel listens and how it reaches its upstreams: TCP or TLS, both ways.

Shared by the MLLP and HTTP proxies and the admin API; what TLS means (material, versions, ciphers,
ALPN) is `harness.tls`. Upstream TLS material is loaded once per channel, not per connection.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.endpoints import (
    HostnameEndpoint,
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
    wrapClientTLS,
)

from harness.proxy.config import Address
from harness.tls import ClientTLS, ListenerTLS, UpstreamTLS, server_options


def set_nodelay(transport: Any) -> None:
    """Small replies leave at once (no Nagle delay) where the transport allows it."""
    try:
        transport.setTcpNoDelay(True)
    except Exception:  # noqa: BLE001 - not every transport (e.g. TLS over a test pipe) has it
        pass


def listen(
    reactor: Any,
    address: Address,
    factory: Any,
    tls: ListenerTLS | None,
    *,
    backlog: int | None = None,
    protocols: Sequence[bytes] = (),
) -> Any:
    """Start listening (TLS when configured; `protocols` are its ALPN names); returns the port.

    Raises CannotListenError when the address is taken, TLSError when the TLS material is unusable."""
    extra: dict[str, Any] = {"interface": address.host}
    if backlog is not None:
        extra["backlog"] = backlog
    if tls is None:
        return reactor.listenTCP(address.port, factory, **extra)
    return reactor.listenSSL(address.port, factory, server_options(tls, protocols), **extra)


class UpstreamDialer:
    """Client endpoints to a channel's upstreams, with its connect timeout and upstream TLS."""

    __slots__ = ("reactor", "connect_timeout_s", "tls", "_client")

    def __init__(
        self,
        reactor: Any,
        *,
        connect_timeout_s: float,
        tls: UpstreamTLS | None,
        protocols: Sequence[bytes] = (),
    ) -> None:
        self.reactor = reactor
        self.connect_timeout_s = connect_timeout_s
        self.tls = tls
        self._client = ClientTLS(tls, protocols) if tls is not None else None

    def tls_for(self, host: str) -> Any:
        """Client TLS options checking `server_name` (else the host connected to)."""
        return self._client.for_host(host)

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


def check_tls(config: Any) -> None:
    """Load and check every TLS setting of a proxy config (`harness proxy --check`): raises TLSError
    naming the first unusable one, as starting the proxy would."""
    from harness.tls import HTTP_ALPN

    for channel in config.channels.values():
        http = channel.protocol == "http"
        if channel.tls is not None:
            server_options(channel.tls, HTTP_ALPN if http else ())
        if channel.upstream_tls is not None:
            ClientTLS(channel.upstream_tls, HTTP_ALPN if http else ())
    if config.admin is not None and config.admin.tls is not None:
        server_options(config.admin.tls, HTTP_ALPN)
