"""The proxy's admin API: channels and live counters, fault rules at run time, Prometheus metrics.

`AdminAPI.handle` is the whole API as a plain function of (method, path, Authorization, body) ->
`Response`, tested without sockets; `AdminAPI.gate` is the part decided on the request head alone
(token, body size), so a refused request's body is never read. `harness.proxy.admin_site` adapts both
to twisted.web with timeouts and limits, and `start_admin` listens in the proxy's own reactor
(loopback by default; beyond it only with TLS or an explicit `insecure_listen`). Every request needs
`Authorization: Bearer <token>`, compared in constant time, except `GET /health` when
`admin.health_public` is set (up/down only); without a usable token the API does not start
(`load_token` says why).

Endpoints: GET /health, GET /channels, GET /channels/{name}, GET|POST|DELETE /channels/{name}/faults,
DELETE /channels/{name}/faults/{id}, POST /channels/{name}/faults/reset, GET /metrics.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from harness.proxy import admin_token
from harness.proxy.admin_token import TOKEN_ENV, AdminTokenError
from harness.proxy.faults.engine import FaultEngine
from harness.proxy.faults.params import RuleError, load_rule_json
from harness.proxy.faults.rules import parse_rule
from harness.proxy.stats import OUTCOME_COUNTERS, TYPE_OUTCOMES, ChannelStats

if TYPE_CHECKING:
    from harness.proxy.config import AdminConfig

__all__ = [
    "AdminAPI", "AdminChannel", "AdminTokenError", "Response", "TOKEN_ENV", "load_token", "make_resource",
    "start_admin",
]  # fmt: skip

MAX_BODY = 1024 * 1024
JSON_TYPE = "application/json; charset=utf-8"


def load_token(token_file: str | Path | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The admin token from HARNESS_ADMIN_TOKEN, else the first line of `token_file`; refused when
    shorter than 16 characters or when the file is readable by group or others."""
    try:
        return admin_token.load_token(token_file, environ)
    except AdminTokenError as exc:
        raise AdminTokenError(f"admin API not started: {exc}") from None


@dataclass
class AdminChannel:
    """What the admin API knows of one channel; the proxy builds these and keeps incrementing `stats`."""

    name: str
    protocol: str
    listen: str
    upstream: list[str]
    stats: ChannelStats = field(default_factory=ChannelStats)
    faults: FaultEngine | None = None
    kind: str | None = None
    store: Any = None
    """The channel's capture writer (`harness.store.CaptureWriter`: `health`, `errors_by_channel`), or
    None when it captures nothing."""

    def store_down(self) -> str | None:
        """Why the channel's exchanges cannot be recorded now, or None."""
        health = getattr(self.store, "health", None)
        if health is None or health.ok:
            return None
        return health.reason or "capture store unavailable"

    def uncaptured(self) -> int:
        """Exchanges of this channel the store could not record."""
        counts = getattr(self.store, "errors_by_channel", None) or {}
        return counts.get(self.name, 0)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "protocol": self.protocol,
            "listen": self.listen,
            "upstream": list(self.upstream),
        }
        if self.kind:
            data["kind"] = self.kind
        counters = self.stats.snapshot()
        if self.faults is not None:
            counters["faults_applied"] = self.faults.applied
            counters["fault_rules"] = len(self.faults)
        counters["uncaptured"] = self.uncaptured()
        data["counters"] = counters
        if self.store is not None:
            down = self.store_down()
            data["store"] = {"ok": down is None, "reason": down}
        return data


@dataclass(slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = JSON_TYPE
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body)


def _json(status: int, data: Any, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(data, ensure_ascii=False, indent=None).encode("utf-8") + b"\n"
    return Response(status, body, JSON_TYPE, headers or {})


def _error(status: int, message: str, **extra: Any) -> Response:
    headers = extra.pop("headers", None)
    return _json(status, {"error": message, **extra}, headers)


def _unauthorized() -> Response:
    return _error(401, UNAUTHORIZED, headers={"WWW-Authenticate": 'Bearer realm="harness"'})


def _parts(path: str) -> list[str]:
    return [unquote(p) for p in path.split("?", 1)[0].strip("/").split("/") if p]


class ChannelCollector:
    """Reads every channel's counters at scrape time (a custom collector on a dedicated registry)."""

    def __init__(self, channels: Mapping[str, AdminChannel]) -> None:
        self.channels = channels

    def collect(self) -> Iterator[Any]:
        connections = CounterMetricFamily(
            "harness_connections", "Sender connections accepted", labels=["channel"]
        )
        refused = CounterMetricFamily(
            "harness_refused_connections",
            "Sender connections refused (max_connections, or the descriptor budget spent)",
            labels=["channel"],
        )
        open_conns = GaugeMetricFamily(
            "harness_open_connections", "Sender connections open now", labels=["channel"]
        )
        messages = CounterMetricFamily("harness_messages", "Exchanges finished", labels=["channel"])
        outcomes = CounterMetricFamily(
            "harness_exchanges", "Exchanges finished, by outcome", labels=["channel", "outcome"]
        )
        transferred = CounterMetricFamily(
            "harness_bytes",
            "Bytes received (in) and sent (out) on the channel's sockets, sender and upstream sides",
            labels=["channel", "direction"],
        )
        applied = CounterMetricFamily("harness_faults_applied", "Fault rules applied", labels=["channel"])
        rules = GaugeMetricFamily("harness_fault_rules", "Fault rules active", labels=["channel"])
        latency = HistogramMetricFamily(
            "harness_latency_seconds", "Request-to-reply time of exchanges", labels=["channel"]
        )
        store_up = GaugeMetricFamily(
            "harness_store_up",
            "1 when the channel's capture store records exchanges, else 0",
            labels=["channel"],
        )
        uncaptured = CounterMetricFamily(
            "harness_uncaptured_exchanges",
            "Exchanges the capture store could not record",
            labels=["channel"],
        )
        typed, typed_latency, in_flight, queued, up_open, up_connects = _live_families()
        for name, channel in self.channels.items():
            s = channel.stats
            connections.add_metric([name], s.connections)
            refused.add_metric([name], s.refused_connections)
            open_conns.add_metric([name], s.open_connections)
            messages.add_metric([name], s.messages)
            for outcome in OUTCOME_COUNTERS.values():
                outcomes.add_metric([name, outcome], getattr(s, outcome))
            transferred.add_metric([name, "in"], s.bytes_in)
            transferred.add_metric([name, "out"], s.bytes_out)
            if channel.faults is not None:
                applied.add_metric([name], channel.faults.applied)
                rules.add_metric([name], len(channel.faults))
            buckets, total = s.histogram()
            latency.add_metric([name], buckets, total)
            if channel.store is not None:
                store_up.add_metric([name], 0 if channel.store_down() else 1)
                uncaptured.add_metric([name], channel.uncaptured())
            for message_type, t in s.by_type.items():
                for outcome, count in zip(TYPE_OUTCOMES, t.outcomes, strict=True):
                    typed.add_metric([name, message_type, outcome], count)
                buckets, total = t.histogram()
                typed_latency.add_metric([name, message_type], buckets, total)
            roles = {address: "primary" if i == 0 else "backup" for i, address in enumerate(channel.upstream)}
            for address, count in s.upstream_connects.items():
                up_connects.add_metric([name, address, roles.get(address, "other")], count)
            if s.live is not None:
                live = s.live()
                in_flight.add_metric([name], live.in_flight)
                queued.add_metric([name], live.queued)
                for address in {**dict.fromkeys(channel.upstream), **live.upstreams}:
                    role = roles.get(address, "other")
                    up_open.add_metric([name, address, role], live.upstreams.get(address, 0))
        yield from (connections, open_conns, messages, outcomes, transferred, applied, rules, latency)
        yield from (store_up, uncaptured, refused)
        yield from (typed, typed_latency, in_flight, queued, up_open, up_connects)


def _live_families() -> tuple:
    """What dashboards need beyond the channel totals: per message type, in flight, upstreams in use."""
    return (
        CounterMetricFamily(
            "harness_message_exchanges",
            "Exchanges finished, by message type (a channel's first 50 types, then 'other') and outcome",
            labels=["channel", "message_type", "outcome"],
        ),
        HistogramMetricFamily(
            "harness_message_latency_seconds",
            "Request-to-reply time of exchanges, by message type",
            labels=["channel", "message_type"],
        ),
        GaugeMetricFamily(
            "harness_in_flight", "Requests forwarded whose reply has not come yet", labels=["channel"]
        ),
        GaugeMetricFamily(
            "harness_queued_requests", "Requests received and waiting to be forwarded", labels=["channel"]
        ),
        GaugeMetricFamily(
            "harness_upstream_connections",
            "Open upstream connections, per upstream (role: primary is the first of the channel's list)",
            labels=["channel", "upstream", "role"],
        ),
        CounterMetricFamily(
            "harness_upstream_connects",
            "Upstream connections opened, per upstream and role",
            labels=["channel", "upstream", "role"],
        ),
    )


UNAUTHORIZED = (
    "missing or wrong admin token: send 'Authorization: Bearer <token>' "
    f"(the proxy reads it from {TOKEN_ENV} or admin.token_file)"
)


class AdminAPI:
    """The admin API over a set of channels, as a plain request -> response function."""

    def __init__(
        self,
        channels: Mapping[str, AdminChannel],
        token: str,
        *,
        health_public: bool = False,
        max_body: int = MAX_BODY,
        audit: Callable[[str, str, dict[str, Any], dict[str, Any]], None] | None = None,
    ) -> None:
        if not token:
            raise AdminTokenError("admin API not started: empty token")
        from harness.audit.log import os_actor, token_fingerprint

        self.channels = channels
        self._token = token.encode("utf-8")
        self.audit = audit
        """Called with (action, target, details, actor) for every fault rule change; raises when the
        change could not be recorded (the answer then says so, and the proxy logs it)."""
        self.actor = {**os_actor(), "via": "admin API", "token": token_fingerprint(token)}
        self.health_public = health_public
        self.max_body = max_body
        self.started = time.time()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(ChannelCollector(channels))

    def authorized(self, authorization: str | bytes | None) -> bool:
        if authorization is None:
            return False
        if isinstance(authorization, str):
            authorization = authorization.encode("utf-8", "replace")
        scheme, _, credentials = authorization.strip().partition(b" ")
        if scheme.lower() != b"bearer":
            return False
        return hmac.compare_digest(credentials.strip(), self._token)

    def _public(self, method: str, path: str) -> bool:
        return self.health_public and method.upper() == "GET" and _parts(path) == ["health"]

    def gate(
        self, method: str, path: str, authorization: str | bytes | None, length: int | None
    ) -> Response | None:
        """The answer decided on the request head alone (None: read the body and `handle` it).

        Runs before a single body byte is read: a request without the token, or announcing a body over
        the limit, is answered and its connection closed with the body unread.
        """
        if not self.authorized(authorization) and not self._public(method, path):
            return _unauthorized()
        if length is not None and length > self.max_body:
            return self.too_large(length)
        return None

    def too_large(self, size: int, *, so_far: bool = False) -> Response:
        what = f"over {size - 1}" if so_far else str(size)
        return _error(413, f"request body is {what} bytes; the limit is {self.max_body}")

    def handle(
        self, method: str, path: str, authorization: str | bytes | None, body: bytes = b""
    ) -> Response:
        if not self.authorized(authorization):
            if self._public(method, path):
                return self._public_health()
            return _unauthorized()
        parts = _parts(path)
        try:
            return self._route(method.upper(), parts, body)
        except RuleError as exc:
            return _error(400, f"bad fault rule: {exc}", where=exc.where)

    def _public_health(self) -> Response:
        """Up or down, nothing else: what a load balancer needs and all an anonymous caller gets."""
        full = self._health()
        try:
            status = full.json().get("status", "unknown")
        except (ValueError, AttributeError):
            status = "unknown"
        return _json(full.status, {"status": status})

    # --- routing -----------------------------------------------------------------------------

    def _route(self, method: str, parts: list[str], body: bytes) -> Response:
        if parts == ["health"]:
            return self._only(method, "GET") or self._health()
        if parts == ["metrics"]:
            return self._only(method, "GET") or self._metrics()
        if parts == ["channels"]:
            return self._only(method, "GET") or _json(
                200, {"channels": [c.to_json() for c in self.channels.values()]}
            )
        if len(parts) >= 2 and parts[0] == "channels":
            channel = self.channels.get(parts[1])
            if channel is None:
                known = ", ".join(self.channels) or "(none)"
                return _error(404, f"unknown channel {parts[1]!r}; channels: {known}")
            rest = parts[2:]
            if not rest:
                return self._only(method, "GET") or _json(200, channel.to_json())
            if rest[0] == "faults":
                return self._faults(method, channel, rest[1:], body)
        return _error(
            404,
            f"no such endpoint: {method} /{'/'.join(parts)}",
            endpoints=[
                "GET /health",
                "GET /channels",
                "GET /channels/{name}",
                "GET|POST|DELETE /channels/{name}/faults",
                "DELETE /channels/{name}/faults/{id}",
                "POST /channels/{name}/faults/reset",
                "GET /metrics",
            ],
        )

    @staticmethod
    def _only(method: str, *allowed: str) -> Response | None:
        if method in allowed:
            return None
        return _error(
            405,
            f"method {method} not allowed here; use {' or '.join(allowed)}",
            headers={"Allow": ", ".join(allowed)},
        )

    def _health(self) -> Response:
        """200 while every channel can record what it proxies; 503 naming the channels that cannot."""
        down = {name: why for name, ch in self.channels.items() if (why := ch.store_down()) is not None}
        body: dict[str, Any] = {
            "status": "unavailable" if down else "ok",
            "channels": len(self.channels),
            "uptime_s": round(time.time() - self.started, 3),
        }
        if down:
            body["store_down"] = down
        return _json(503 if down else 200, body)

    def _metrics(self) -> Response:
        return Response(200, generate_latest(self.registry), CONTENT_TYPE_LATEST)

    def _faults(self, method: str, channel: AdminChannel, rest: list[str], body: bytes) -> Response:
        engine = channel.faults
        if engine is None:
            return _error(409, f"channel {channel.name!r} ({channel.protocol}) has no fault engine")
        if not rest:
            if method == "GET":
                return _json(200, {"channel": channel.name, "rules": [r.to_json() for r in engine.list()]})
            if method == "POST":
                return self._add(channel, engine, body)
            if method == "DELETE":
                return self._clear(channel, engine)
            return self._only(method, "GET", "POST", "DELETE")  # type: ignore[return-value]
        if rest == ["reset"]:
            return self._only(method, "POST") or self._clear(channel, engine)
        if len(rest) == 1:
            rule_id = rest[0]
            if method == "GET":
                rule = engine.get(rule_id)
                if rule is None:
                    return self._no_rule(channel, engine, rule_id)
                return _json(200, rule.to_json())
            if method == "DELETE":
                try:
                    removed = engine.remove(rule_id)
                except KeyError:
                    return self._no_rule(channel, engine, rule_id)
                answer = {"channel": channel.name, "removed": removed.to_json()}
                return _json(
                    200, self._recorded("fault.remove", channel, {"rule": removed.to_json()}, answer)
                )
            return self._only(method, "GET", "DELETE")  # type: ignore[return-value]
        return _error(404, f"no such endpoint under /channels/{channel.name}/faults: /{'/'.join(rest)}")

    @staticmethod
    def _no_rule(channel: AdminChannel, engine: FaultEngine, rule_id: str) -> Response:
        ids = ", ".join(r.id for r in engine.list()) or "(none)"
        return _error(404, f"no fault rule {rule_id!r} on channel {channel.name!r}; rules: {ids}")

    def _add(self, channel: AdminChannel, engine: FaultEngine, body: bytes) -> Response:
        if len(body) > self.max_body:
            return self.too_large(len(body))
        if not body.strip():
            return _error(400, 'empty body: POST a fault rule as JSON, e.g. {"action": {"type": "nak"}}')
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            return _error(400, f"request body is not UTF-8 (byte {exc.start})")
        try:
            data = load_rule_json(text)
        except RuleError as exc:
            return _error(400, f"request body: {exc.problem}")
        items = data if isinstance(data, list) else [data]
        rules = []
        for i, item in enumerate(items):
            try:
                rules.append(parse_rule(item, engine.protocol))
            except RuleError as exc:
                raise (exc.within(f"[{i}]") if isinstance(data, list) else exc) from None
        added = []
        for rule in rules:
            added.append(engine.add(rule).to_json())
        answer = {
            "channel": channel.name,
            **({"rules": added} if isinstance(data, list) else {"rule": added[0]}),
        }
        return _json(201, self._recorded("fault.add", channel, {"rules": added}, answer))

    def _clear(self, channel: AdminChannel, engine: FaultEngine) -> Response:
        before = [r.to_json() for r in engine.list()]
        answer = {"channel": channel.name, "removed": engine.reset()}
        return _json(200, self._recorded("fault.clear", channel, {"rules": before}, answer))

    def _recorded(
        self, action: str, channel: AdminChannel, details: dict[str, Any], answer: dict[str, Any]
    ) -> dict[str, Any]:
        """`answer`, once the change is in the audit log; with `audit_error` when it could not be."""
        if self.audit is None:
            return answer
        try:
            self.audit(action, f"channel {channel.name}", {"channel": channel.name, **details}, self.actor)
        except Exception as exc:  # noqa: BLE001 - the change is made; the caller must learn it is unrecorded
            return {**answer, "audit_error": f"not recorded in the audit log: {exc}"}
        return answer


def make_resource(api: AdminAPI) -> Any:
    """A twisted.web resource serving `api` (imported here so the core needs no Twisted)."""
    from twisted.web.resource import Resource

    class AdminResource(Resource):
        isLeaf = True

        def render(self, request: Any) -> bytes:
            body = request.content.read(api.max_body + 1) if request.content is not None else b""
            response = api.handle(
                request.method.decode("ascii", "replace"),
                request.path.decode("utf-8", "replace"),
                request.getHeader(b"authorization"),
                body,
            )
            request.setResponseCode(response.status)
            request.setHeader(b"content-type", response.content_type.encode("ascii"))
            request.setHeader(b"cache-control", b"no-store")
            for name, value in response.headers.items():
                request.setHeader(name.encode("ascii"), value.encode("utf-8"))
            return response.body

    return AdminResource()


class AdminListenRefused(Exception):
    """Why the admin API will not listen where asked (plain text beyond loopback)."""


def start_admin(
    reactor: Any,
    channels: Mapping[str, AdminChannel],
    token: str,
    host: str = "127.0.0.1",
    port: int = 8700,
    *,
    config: AdminConfig | None = None,
    log: Callable[..., None] | None = None,
    audit: Callable[[str, str, dict[str, Any], dict[str, Any]], None] | None = None,
) -> Any:
    """Listen in `reactor`; returns the listening port (`.getHost().port` when port is 0).

    With `config` (the proxy's `admin:` section) its address, TLS, timeouts and limits apply; without
    it, `host`/`port` and the defaults. Plain HTTP beyond loopback is refused (CannotListenError, with
    the reason) unless `config.insecure_listen`, and then `log` gets a warning.
    """
    from twisted.internet.error import CannotListenError

    from harness.proxy.admin_site import AdminSite
    from harness.proxy.config import Address
    from harness.proxy.config import AdminConfig as Settings
    from harness.proxy.endpoints import listen
    from harness.tls import HTTP_ALPN

    settings = config or Settings(listen=Address(host, port))
    address = settings.listen
    if settings.beyond_loopback and settings.tls is None:
        if not settings.insecure_listen:
            reason = AdminListenRefused(
                f"{address} is reachable beyond this machine and the admin token would cross the network "
                "in clear; set admin.tls (cert, key) or, knowingly, admin.insecure_listen: true"
            )
            raise CannotListenError(address.host, address.port, reason)
        if log is not None:
            log(
                "warning",
                f"admin API on {address} without TLS (admin.insecure_listen): the bearer token and every "
                "admin request cross the network in clear",
            )
    api = AdminAPI(
        channels, token, health_public=settings.health_public, max_body=settings.max_body_bytes, audit=audit
    )
    site = AdminSite(
        make_resource(api),
        api,
        reactor=reactor,
        idle_timeout_s=settings.idle_timeout_s,
        request_timeout_s=settings.request_timeout_s,
        max_connections=settings.max_connections,
    )
    return listen(reactor, address, site, settings.tls, protocols=HTTP_ALPN)
