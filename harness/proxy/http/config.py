"""HTTP channels in the proxy config: `protocol: http`, `kind`, `upstream: "http://HOST:PORT"`.

Registered in `harness.proxy.config.CHANNEL_PARSERS` under "http"; everything every channel has (listen, TLS
on either side, capture mode, faults, connect timeout) is read by the shared config code, this module
adds the HTTP keys. An `https://` upstream turns on upstream TLS (system trust unless `upstream_tls`
says otherwise); a list of upstreams are backups tried in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from harness.codecs import KINDS as HTTP_KINDS
from harness.proxy.config import (
    CHANNEL_PARSERS,
    ChannelConfig,
    ConfigError,
    Section,
    UpstreamTLS,
    _common,
    _show,
)

ON_UPSTREAM_DOWN = ("status", "close")
DEFAULT_MAX_BODY = 64 * 1024 * 1024
DEFAULT_CAPTURE_BODY = 1024 * 1024


@dataclass(frozen=True, slots=True)
class HTTPChannelConfig(ChannelConfig):
    kind: str = "raw"
    upstream_scheme: str = "http"
    max_body_bytes: int = DEFAULT_MAX_BODY
    """Larger request bodies are refused with 413 (the upstream never sees them)."""
    capture_body_bytes: int = DEFAULT_CAPTURE_BODY
    """Body bytes kept in the capture and shown to fault rules; beyond it bodies stream through and the
    capture records the truncation."""
    response_timeout_s: float = 60.0
    """No complete response head within this: 504 to the client, outcome timeout."""
    idle_timeout_s: float = 120.0
    """A keep-alive client connection idle this long (no byte of a next request) is closed."""
    head_timeout_s: float = 30.0
    """A request head not complete this long after its first byte: 408, the connection closes (bytes
    trickling in do not extend it: slowloris)."""
    body_timeout_s: float = 120.0
    """A request body not complete this long after its head: 408 (the upstream, when it had a part,
    is cut off)."""
    on_upstream_down: str = "status"
    """`status`: answer 502 with a body saying why; `close`: close the client's connection."""
    on_store_error: str = "status"
    """Durable capture while the store cannot record: `status` answers 503 (nothing forwarded),
    `close` closes the client's connection."""
    rewrite_host: bool = False
    """Send the upstream's HOST:PORT as Host instead of the client's Host."""
    x_forwarded_for: bool = False
    """Add the client's address to X-Forwarded-For (and set X-Forwarded-Proto)."""
    pool_size: int = 32
    """Idle keep-alive connections kept per upstream."""


def _upstream_urls(section: Section) -> tuple[str, list[str]]:
    """(scheme, HOST:PORT list) from `upstream:` URLs; errors name the item."""
    raw = section.raw("upstream")
    where = section.path("upstream")
    if raw is None:
        raise ConfigError(where, 'required ("http://HOST:PORT", or a list of them: backups tried in order)')
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        raise ConfigError(where, "the list of upstreams is empty")
    schemes: set[str] = set()
    hostports: list[str] = []
    for i, item in enumerate(items):
        at = f"{where}[{i}]" if isinstance(raw, list) else where
        if not isinstance(item, str) or "://" not in item:
            raise ConfigError(at, f'expected a URL such as "http://127.0.0.1:18080", got {_show(item)}')
        url = urlsplit(item.strip())
        if url.scheme not in ("http", "https"):
            raise ConfigError(at, f"scheme must be http or https, got {url.scheme!r}")
        if url.path not in ("", "/") or url.query or url.fragment:
            raise ConfigError(at, f"give only scheme://HOST:PORT (paths are passed through), got {item!r}")
        try:
            port = url.port
        except ValueError:
            raise ConfigError(at, f"bad port in {item!r}") from None
        if not url.hostname:
            raise ConfigError(at, f"no host in {item!r}")
        port = port or (443 if url.scheme == "https" else 80)
        host = f"[{url.hostname}]" if ":" in url.hostname else url.hostname
        hostports.append(f"{host}:{port}")
        schemes.add(url.scheme)
    if len(schemes) > 1:
        raise ConfigError(where, "all upstreams of a channel use the same scheme (http or https)")
    return schemes.pop(), hostports


def parse_http_channel(section: Section, name: str) -> HTTPChannelConfig:
    scheme, hostports = _upstream_urls(section)
    data: dict[str, Any] = dict(section.data)
    data["upstream"] = hostports
    shim = Section(data, section.where)
    common = _common(shim, name, "http")
    if scheme == "https" and common["upstream_tls"] is None:
        common["upstream_tls"] = UpstreamTLS(where=section.path("upstream_tls"))
    capture_body = shim.integer("capture_body_bytes", DEFAULT_CAPTURE_BODY, minimum=0)
    channel = HTTPChannelConfig(
        **common,
        kind=shim.choice("kind", HTTP_KINDS, "raw"),
        upstream_scheme=scheme,
        max_body_bytes=shim.integer("max_body_bytes", DEFAULT_MAX_BODY, minimum=1),
        capture_body_bytes=capture_body,
        response_timeout_s=shim.number("response_timeout_s", 60.0, above=0),
        idle_timeout_s=shim.number("idle_timeout_s", 120.0, above=0),
        head_timeout_s=shim.number("head_timeout_s", 30.0, above=0),
        body_timeout_s=shim.number("body_timeout_s", 120.0, above=0),
        on_upstream_down=shim.choice("on_upstream_down", ON_UPSTREAM_DOWN, "status"),
        on_store_error=shim.choice("on_store_error", ON_UPSTREAM_DOWN, "status"),
        rewrite_host=shim.boolean("rewrite_host", False),
        x_forwarded_for=shim.boolean("x_forwarded_for", False),
        pool_size=shim.integer("pool_size", 32, minimum=0),
    )
    shim.finish(also=("protocol",))
    return channel


CHANNEL_PARSERS["http"] = parse_http_channel
