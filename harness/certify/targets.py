"""Where active certification sends its cases: an HTTP base URL or an MLLP HOST:PORT, maybe via the proxy.

`--through PROXY_CONFIG` sends every case through a running `harness proxy`: the channel whose upstream
is the target (or the one `--channel` names) is looked up in the proxy's config and the cases go to its
listen address, so the proxy captures the whole certification in its store (evidence an engineer can
list, export or replay later) and its fault rules apply.
"""

from __future__ import annotations

import http.client
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from harness.address import parse_hostport
from harness.certify.cases import Case, Reply
from harness.client_tls import TLSOptions
from harness.tls import TLSError

HTTP_FAMILIES = ("medins", "hl7v3", "cdc", "fhir")
KINDS = {"medins": "medins", "hl7v3": "soap", "cdc": "cdc", "fhir": "fhir", "hl7v2": "hl7v2"}
"""The capture kind of each family's traffic (harness.codecs / the proxy's channel `kind`)."""


class TargetError(ValueError):
    """A target or proxy config that cannot be used: the message says what and where."""


@dataclass(frozen=True, slots=True)
class Address:
    scheme: str  # http | https | mllp
    host: str
    port: int
    base: str = ""  # HTTP: the path the spec's paths are under (a FHIR base such as /fhir)
    tls: bool = False  # MLLP: the listener speaks TLS (a proxy channel with `tls`); HTTP says https

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.scheme == "mllp":
            return f"{host}:{self.port}"
        return f"{self.scheme}://{host}:{self.port}{self.base}"


def parse_target(text: str, family: str) -> Address:
    """`http(s)://HOST:PORT[/base]` for HTTP families, `HOST:PORT` (or `mllp://HOST:PORT`) for HL7 v2."""
    text = text.strip()
    if family == "hl7v2":
        hostport = text.removeprefix("mllp://").rstrip("/")
        try:
            host, port = parse_hostport(hostport, what="--target")
        except ValueError as exc:
            raise TargetError(f"{exc} (HL7 v2 is certified over MLLP: --target HOST:PORT)") from None
        return Address("mllp", host, port)
    if "://" not in text:
        try:
            host, port = parse_hostport(text, what="--target")
        except ValueError as exc:
            raise TargetError(f"{exc}; or a URL such as http://127.0.0.1:18080") from None
        return Address("http", host, port)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetError(f"--target {text!r}: expected http://HOST:PORT[/base] or https://...")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise TargetError(f"--target {text!r}: the port is not a number from 0 to 65535") from None
    return Address(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))


def through(
    config_path: str, target: Address, family: str, channel: str | None = None
) -> tuple[Address, str]:
    """The proxy channel's listen address to send to, and a description for the report."""
    from harness.proxy.config import ConfigError, load_config

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        raise TargetError(f"--through {config_path}: {exc}") from None
    protocol = "mllp" if family == "hl7v2" else "http"
    candidates = {n: c for n, c in config.channels.items() if c.protocol == protocol}
    if channel is not None:
        if channel not in config.channels:
            known = ", ".join(config.channels) or "none"
            raise TargetError(f"--channel {channel}: no such channel in {config_path} (channels: {known})")
        chosen = config.channels[channel]
        if chosen.protocol != protocol:
            raise TargetError(
                f"--channel {channel} is a {chosen.protocol} channel; {family} needs {protocol}"
            )
    else:
        matching = [
            c
            for c in candidates.values()
            if any(u.host == target.host and u.port == target.port for u in c.upstreams)
        ]
        if len(matching) != 1 and len(candidates) == 1:
            matching = list(candidates.values())
        if len(matching) != 1:
            raise TargetError(
                f"--through {config_path}: {len(matching)} {protocol} channels forward to {target.host}:"
                f"{target.port}; name one with --channel ({', '.join(candidates) or 'none'})"
            )
        chosen = matching[0]
    listen = chosen.listen
    host = "127.0.0.1" if listen.host in ("0.0.0.0", "") else "::1" if listen.host == "::" else listen.host
    if listen.port == 0:
        raise TargetError(f"channel {chosen.name} listens on port 0 (a free port): give it a fixed port")
    scheme = "mllp" if protocol == "mllp" else ("https" if chosen.tls else "http")
    upstreams = ", ".join(str(u) for u in chosen.upstreams)
    described = f"proxy channel {chosen.name} ({listen} -> {upstreams}), captured in {config.store}"
    mllp_tls = protocol == "mllp" and chosen.tls is not None
    return Address(scheme, host, listen.port, target.base, tls=mllp_tls), described


class HttpTarget:
    """Keep-alive HTTP/1.1 to one server; a dropped connection is reopened once per request."""

    def __init__(self, address: Address, *, timeout: float = 30.0, tls: TLSOptions | None = None) -> None:
        if tls is not None and address.scheme != "https":
            raise TargetError(f"--target {address}: TLS options need an https:// target")
        self.address = address
        self.timeout = timeout
        self.tls = tls or TLSOptions()
        self.context = self.tls.context() if address.scheme == "https" else None
        self.conn: http.client.HTTPConnection | None = None

    def describe(self) -> str:
        return str(self.address)

    def _connect(self) -> http.client.HTTPConnection:
        if self.context is not None:
            return self.tls.https_connection(
                self.address.host, self.address.port, timeout=self.timeout, context=self.context
            )
        return http.client.HTTPConnection(self.address.host, self.address.port, timeout=self.timeout)

    def send(self, case: Case) -> Reply:
        request = case.request
        path = self.address.base + request.path
        headers = {"Host": f"{self.address.host}:{self.address.port}", **request.headers}
        started = time.perf_counter()
        error = ""
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = self._connect()
            try:
                self.conn.request(request.method, path, request.body, headers)
                resp = self.conn.getresponse()
                body = resp.read()
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                if attempt == 1 and not isinstance(
                    exc, (TimeoutError, socket.timeout, ConnectionRefusedError)
                ):
                    continue
                break
            if resp.getheader("Connection", "").lower() == "close":
                self.close()
            return Reply(
                status=resp.status,
                headers={k.lower(): v for k, v in resp.getheaders()},
                body=body,
                elapsed_ms=(time.perf_counter() - started) * 1000,
                charset=_charset(resp.getheader("Content-Type", "")),
            )
        return Reply(error=f"{self.describe()}: {error}", elapsed_ms=(time.perf_counter() - started) * 1000)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def _charset(content_type: str) -> str:
    for part in content_type.split(";")[1:]:
        name, _, value = part.strip().partition("=")
        if name.lower() == "charset" and value:
            return value.strip('"')
    return "utf-8"


class MllpTarget:
    """HL7 v2 over MLLP with the harness's client: it waits for what MSH-15/16 ask (harness.hl7v2.ackmode)."""

    def __init__(self, address: Address, *, timeout: float = 10.0, tls: TLSOptions | None = None) -> None:
        from harness.mllp_client import MLLPClient

        self.address = address
        self.client = MLLPClient(address.host, address.port, timeout=timeout, conditional_wait=1.0, tls=tls)

    def describe(self) -> str:
        return f"mllp://{self.address}" + (" over TLS" if self.client.tls is not None else "")

    def send(self, case: Case) -> Reply:
        result = self.client.send(case.request.body)
        acks = [a for a in (result.accept_ack, result.ack) if a]
        error = (
            result.error if result.error_kind in ("connect", "send", "closed", "timeout", "invalid") else None
        )
        return Reply(
            status=None,
            acks=acks,
            outcome=result.outcome,
            error=error,
            elapsed_ms=result.rtt_ms or 0.0,
            charset=case.request.charset,
        )

    def close(self) -> None:
        self.client.close()


def open_target(
    address: Address, *, timeout: float, tls: TLSOptions | None = None
) -> HttpTarget | MllpTarget:
    """The sender for an address; TargetError when the TLS settings cannot be used with it."""
    try:
        if address.scheme == "mllp":
            if tls is None and address.tls:
                tls = TLSOptions()  # a TLS proxy channel: verified against the system's CAs unless --ca
            return MllpTarget(address, timeout=timeout, tls=tls)
        return HttpTarget(address, timeout=timeout, tls=tls)
    except TLSError as exc:
        raise TargetError(f"TLS: {exc}") from None


def reachable(address: Address, timeout: float = 5.0) -> str | None:
    """None when something accepts TCP connections at the address, else why not."""
    try:
        with socket.create_connection((address.host, address.port), timeout=timeout):
            return None
    except OSError as exc:
        return f"cannot connect to {address.host}:{address.port}: {exc.strerror or exc}"
