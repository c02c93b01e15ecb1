"""The proxy's YAML configuration: read, validated, turned into plain frozen values.

Engineers edit this file by hand beside a live interface, so every complaint names the key path and
the bad value (`channels.adt.listen: expected HOST:PORT, got '2575'`) and unknown keys are refused
rather than silently ignored (a typo in `ack_timeout_s` must not leave a 30 s default in place).

Channels are dispatched on `protocol`: each protocol registers a parser in `CHANNEL_PARSERS`, so the
HTTP side adds its own channel shape without touching the MLLP one. Relative paths (store, TLS
files) are taken relative to the directory the proxy is started in.
"""

from __future__ import annotations

import codecs
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.address import parse_hostport
from harness.tls import TLS_VERSIONS, ListenerTLS, UpstreamTLS

DEFAULT_STORE = Path("reports/captures.db")
DEFAULT_ADMIN_LISTEN = "127.0.0.1:8700"
DEFAULT_MAX_FRAME = 16 * 1024 * 1024

CAPTURE_MODES = ("durable", "fast", "off")
ON_UPSTREAM_DOWN = ("close", "nak")
ON_ACK_TIMEOUT = ("close", "nak", "wait")
ON_MALFORMED = ("forward", "refuse")
ON_STORE_ERROR = ("close", "nak")
UPSTREAM_CONNECTION = ("reuse", "per_message")
MLLP_KINDS = ("hl7v2",)


class ConfigError(ValueError):
    """A config that cannot be used; `where` is the key path (`channels.adt.listen`)."""

    def __init__(self, where: str, problem: str) -> None:
        self.where = where
        self.problem = problem
        super().__init__(f"{where}: {problem}" if where else problem)


@dataclass(frozen=True, slots=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class ChannelConfig:
    """What every channel has, whatever its protocol."""

    name: str
    protocol: str
    listen: Address
    upstreams: tuple[Address, ...]
    capture: str = "durable"
    connect_timeout_s: float = 5.0
    tls: ListenerTLS | None = None
    upstream_tls: UpstreamTLS | None = None
    faults: tuple[dict[str, Any], ...] = ()
    max_connections: int = 512
    """Client connections at once; more are refused (with a capture row each)."""


@dataclass(frozen=True, slots=True)
class MLLPChannelConfig(ChannelConfig):
    kind: str = "hl7v2"
    charset: str | None = None
    """An explicit codec for every message; None (`auto`) follows MSH-18, else UTF-8."""
    ack_timeout_s: float = 30.0
    on_ack_timeout: str = "close"
    on_upstream_down: str = "close"
    on_malformed: str = "forward"
    max_frame_bytes: int = DEFAULT_MAX_FRAME
    max_in_flight: int = 1
    """Requests outstanding at the upstream at once; 1 is classic MLLP stop-and-wait."""
    on_store_error: str = "close"
    """Durable capture, store unable to record: close the sender's connection, or answer AR/CR."""
    resend_on_stale_connection: bool = False
    upstream_connection: str = "reuse"
    """`per_message`: a new upstream connection for every message, for upstreams known to close after
    each reply (otherwise learnt from the first such close)."""
    max_pending_bytes: int = 8 * 1024 * 1024
    frame_timeout_s: float = 30.0
    idle_timeout_s: float = 0.0
    app_ack_timeout_s: float | None = None
    """Enhanced mode: after a CA, how long the application ACK may take (None: ack_timeout_s)."""
    conditional_ack_wait_s: float | None = None
    """How long a reply owed only on error or success (MSH-15/16 ER, SU) is awaited (None: ack_timeout_s)."""


DEFAULT_ADMIN_IDLE_TIMEOUT_S = 60.0
DEFAULT_ADMIN_REQUEST_TIMEOUT_S = 10.0
DEFAULT_ADMIN_MAX_BODY = 1024 * 1024
DEFAULT_ADMIN_MAX_CONNECTIONS = 32


@dataclass(frozen=True, slots=True)
class AdminConfig:
    listen: Address
    token_file: Path | None = None
    tls: ListenerTLS | None = None
    insecure_listen: bool = False
    """Listen beyond loopback without TLS (the token crosses the network in clear); warned at start."""
    health_public: bool = False
    """GET /health answers without the token, with up/down only (for load balancers)."""
    idle_timeout_s: float = DEFAULT_ADMIN_IDLE_TIMEOUT_S
    request_timeout_s: float = DEFAULT_ADMIN_REQUEST_TIMEOUT_S
    max_body_bytes: int = DEFAULT_ADMIN_MAX_BODY
    max_connections: int = DEFAULT_ADMIN_MAX_CONNECTIONS

    @property
    def beyond_loopback(self) -> bool:
        return not is_loopback(self.listen.host)


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    store: Path | str = DEFAULT_STORE
    """A SQLite file, or a PostgreSQL URL (str) for a store several proxies share."""
    store_encryption: Any = None
    """`store.encryption`: where the key that seals captured bodies comes from (`crypto.KeySource`)."""
    instance: str = field(default_factory=lambda: default_instance())
    """This proxy's name on every exchange it captures (several proxies may write one store)."""
    admin: AdminConfig | None = field(default=None)
    """None: the admin API is switched off (`admin: off`)."""
    channels: dict[str, ChannelConfig] = field(default_factory=dict)
    source: str = "<config>"


# -- reading values ----------------------------------------------------------------------------


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


class Section:
    """Validated access to one YAML mapping; `finish()` refuses the keys nobody asked for."""

    _MISSING = object()

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, Mapping):
            raise ConfigError(where, f"expected a mapping, got {_show(data)}")
        for key in data:
            if not isinstance(key, str):
                raise ConfigError(where, f"keys must be text, got {key!r}")
        self.data = data
        self.where = where
        self._used: set[str] = set()

    def path(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def raw(self, key: str, default: Any = None) -> Any:
        self._used.add(key)
        value = self.data.get(key)
        return default if value is None else value

    def text(self, key: str, default: str | None = None) -> str | None:
        value = self.raw(key)
        if value is None:
            return default
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(self.path(key), f"expected text, got {_show(value)}")
        return value.strip()

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        value = self.raw(key)
        if value is None:
            return default
        if value is False and "off" in choices:  # YAML 1.1 reads a bare `off` as false
            return "off"
        if not isinstance(value, str) or value not in choices:
            raise ConfigError(self.path(key), f"expected one of {' | '.join(choices)}, got {_show(value)}")
        return value

    def number(
        self, key: str, default: float, *, above: float | None = None, minimum: float | None = None
    ) -> float:
        value = self.raw(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(self.path(key), f"expected a number, got {_show(value)}")
        if above is not None and value <= above:
            raise ConfigError(self.path(key), f"must be greater than {above:g}, got {value!r}")
        if minimum is not None and value < minimum:
            raise ConfigError(self.path(key), f"must be at least {minimum:g}, got {value!r}")
        return float(value)

    def integer(self, key: str, default: int, *, minimum: int) -> int:
        value = self.raw(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(self.path(key), f"expected a whole number, got {_show(value)}")
        if value < minimum:
            raise ConfigError(self.path(key), f"must be at least {minimum}, got {value!r}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.raw(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise ConfigError(self.path(key), f"expected true or false, got {_show(value)}")
        return value

    def address(self, key: str, value: Any = _MISSING, *, where: str | None = None) -> Address:
        where = where or self.path(key)
        if value is Section._MISSING:
            value = self.raw(key)
        if value is None:
            raise ConfigError(where, "required (HOST:PORT)")
        return parse_address(value, where)

    def file(self, key: str, *, required: bool = False) -> Path | None:
        value = self.raw(key)
        if value is None:
            if required:
                raise ConfigError(self.path(key), "required (a file path)")
            return None
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(self.path(key), f"expected a file path, got {_show(value)}")
        path = Path(value).expanduser()
        if not path.is_file():
            raise ConfigError(self.path(key), f"no such file: {str(path)!r}")
        return path

    def finish(self, *, also: tuple[str, ...] = ()) -> None:
        known = self._used | set(also)
        unknown = [key for key in self.data if key not in known]
        if unknown:
            raise ConfigError(
                self.path(unknown[0]), f"unknown key (known here: {', '.join(sorted(known))})"
            )


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost: reachable from this machine only."""
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_address(value: Any, where: str) -> Address:
    if isinstance(value, bool) or not isinstance(value, str):
        raise ConfigError(where, f"expected HOST:PORT, got {_show(value)}")
    try:
        host, port = parse_hostport(value, what="address")
    except ValueError:
        raise ConfigError(where, f"expected HOST:PORT, got {value!r}") from None
    return Address(host, port)


# -- channels, dispatched on protocol ------------------------------------------------------------


def _common(section: Section, name: str, protocol: str) -> dict[str, Any]:
    listen = section.address("listen")
    upstream = section.raw("upstream")
    where = section.path("upstream")
    if upstream is None:
        raise ConfigError(where, "required (HOST:PORT, or a list of them: backups tried in order)")
    if isinstance(upstream, list):
        if not upstream:
            raise ConfigError(where, "the list of upstreams is empty")
        upstreams = tuple(parse_address(item, f"{where}[{i}]") for i, item in enumerate(upstream))
    else:
        upstreams = (parse_address(upstream, where),)
    faults = section.raw("faults", [])
    if not isinstance(faults, list):
        raise ConfigError(section.path("faults"), f"expected a list of fault rules, got {_show(faults)}")
    for i, rule in enumerate(faults):
        if not isinstance(rule, Mapping):
            raise ConfigError(f"{section.path('faults')}[{i}]", f"expected a mapping, got {_show(rule)}")
    _check_faults(faults, protocol, section.path("faults"))
    return {
        "name": name,
        "protocol": protocol,
        "listen": listen,
        "upstreams": upstreams,
        "capture": section.choice("capture", CAPTURE_MODES, "durable"),
        "connect_timeout_s": section.number("connect_timeout_s", 5.0, above=0),
        "tls": _listener_tls(section),
        "upstream_tls": _upstream_tls(section),
        "faults": tuple(dict(rule) for rule in faults),
        "max_connections": section.integer("max_connections", 512, minimum=1),
    }


def _check_faults(rules: list, protocol: str, where: str) -> None:
    """Validate the rules with the fault engine's own parser so errors come at start-up, located."""
    from harness.proxy.faults.params import RuleError
    from harness.proxy.faults.rules import parse_rules

    try:
        parse_rules(rules, protocol, where=where)
    except RuleError as exc:
        raise ConfigError(exc.where, exc.problem) from None


def _listener_tls(parent: Section) -> ListenerTLS | None:
    data = parent.raw("tls")
    if data is None or data is False:
        return None
    s = Section(data, parent.path("tls"))
    tls = ListenerTLS(
        cert=s.file("cert", required=True),
        key=s.file("key", required=True),
        ca=s.file("ca"),
        min_version=_tls_version(s),
        ciphers=_ciphers(s),
        where=s.where,
    )
    s.finish()
    return tls


def _upstream_tls(parent: Section) -> UpstreamTLS | None:
    data = parent.raw("upstream_tls")
    if data is None or data is False:
        return None
    if data is True:
        return UpstreamTLS(where=parent.path("upstream_tls"))
    s = Section(data, parent.path("upstream_tls"))
    tls = UpstreamTLS(
        ca=s.file("ca"),
        cert=s.file("cert"),
        key=s.file("key"),
        server_name=s.text("server_name"),
        verify=s.boolean("verify", True),
        min_version=_tls_version(s),
        ciphers=_ciphers(s),
        where=s.where,
    )
    s.finish()
    if (tls.cert is None) != (tls.key is None):
        missing = "key" if tls.key is None else "cert"
        raise ConfigError(s.path(missing), "required when a client certificate is given (cert and key)")
    return tls


def _tls_version(s: Section) -> str:
    """`min_version: "1.2"` (YAML may hand over the number 1.2: taken as written)."""
    value = s.raw("min_version", "1.2")
    text = str(value) if isinstance(value, (str, float)) and not isinstance(value, bool) else None
    if text not in TLS_VERSIONS:
        raise ConfigError(
            s.path("min_version"), f"expected one of {', '.join(TLS_VERSIONS)}, got {_show(value)}"
        )
    return text


def _ciphers(s: Section) -> str | None:
    value = s.raw("ciphers")
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or not value.isascii():
        raise ConfigError(s.path("ciphers"), f"expected an OpenSSL cipher string, got {_show(value)}")
    return value.strip()


def _charset(section: Section) -> str | None:
    value = section.raw("charset")
    if value is None or value == "auto":
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(section.path("charset"), f"expected auto or a charset name, got {_show(value)}")
    try:
        from harness.hl7v2.charset import resolve
    except ImportError:  # the charset module is optional at config time
        resolve = None
    if resolve is not None:
        resolved = resolve(None, explicit=value)
        if resolved.warning:
            raise ConfigError(section.path("charset"), f"unknown charset {value!r}: {resolved.warning}")
        return resolved.codec
    try:
        return codecs.lookup(value).name
    except LookupError:
        raise ConfigError(section.path("charset"), f"unknown charset {value!r}") from None


def _optional_seconds(section: Section, key: str) -> float | None:
    if section.raw(key) is None:
        return None
    return section.number(key, 0.0, above=0)


def parse_mllp_channel(section: Section, name: str) -> MLLPChannelConfig:
    common = _common(section, name, "mllp")
    channel = MLLPChannelConfig(
        **common,
        kind=section.choice("kind", MLLP_KINDS, "hl7v2"),
        charset=_charset(section),
        ack_timeout_s=section.number("ack_timeout_s", 30.0, above=0),
        on_ack_timeout=section.choice("on_ack_timeout", ON_ACK_TIMEOUT, "close"),
        on_upstream_down=section.choice("on_upstream_down", ON_UPSTREAM_DOWN, "close"),
        on_malformed=section.choice("on_malformed", ON_MALFORMED, "forward"),
        max_frame_bytes=section.integer("max_frame_bytes", DEFAULT_MAX_FRAME, minimum=64),
        max_in_flight=section.integer("max_in_flight", 1, minimum=1),
        on_store_error=section.choice("on_store_error", ON_STORE_ERROR, "close"),
        resend_on_stale_connection=section.boolean("resend_on_stale_connection", False),
        upstream_connection=section.choice("upstream_connection", UPSTREAM_CONNECTION, "reuse"),
        max_pending_bytes=section.integer("max_pending_bytes", 8 * 1024 * 1024, minimum=1024),
        frame_timeout_s=section.number("frame_timeout_s", 30.0, above=0),
        idle_timeout_s=section.number("idle_timeout_s", 0.0, minimum=0),
        app_ack_timeout_s=_optional_seconds(section, "app_ack_timeout_s"),
        conditional_ack_wait_s=_optional_seconds(section, "conditional_ack_wait_s"),
    )
    section.finish(also=("protocol",))
    return channel


ChannelParser = Callable[[Section, str], ChannelConfig]
CHANNEL_PARSERS: dict[str, ChannelParser] = {"mllp": parse_mllp_channel}
"""protocol name -> parser of that protocol's channel section; another protocol registers here."""

PLANNED_PROTOCOLS: tuple[str, ...] = ()
PROTOCOL_MODULES = {"http": "harness.proxy.http.config"}
"""Protocols whose channel parser lives in a module of its own, imported when first named."""


def parse_channel(data: Any, name: str) -> ChannelConfig:
    where = f"channels.{name}"
    section = Section(data, where)
    protocol = section.raw("protocol", "mllp")
    if isinstance(protocol, str) and protocol not in CHANNEL_PARSERS and protocol in PROTOCOL_MODULES:
        import importlib

        importlib.import_module(PROTOCOL_MODULES[protocol])
    parser = CHANNEL_PARSERS.get(protocol) if isinstance(protocol, str) else None
    if parser is None:
        supported = ", ".join(sorted({*CHANNEL_PARSERS, *PROTOCOL_MODULES}))
        later = " (not supported yet)" if protocol in PLANNED_PROTOCOLS else ""
        raise ConfigError(
            section.path("protocol"), f"unknown protocol {_show(protocol)}{later}; supported: {supported}"
        )
    return parser(section, name)


# -- the whole file ----------------------------------------------------------------------------


def _admin(root: Section) -> AdminConfig | None:
    data = root.raw("admin")
    if data is False or data == "off":
        return None
    if data is None:
        return AdminConfig(listen=parse_address(DEFAULT_ADMIN_LISTEN, "admin.listen"))
    s = Section(data, "admin")
    listen = s.raw("listen")
    admin = AdminConfig(
        listen=parse_address(listen if listen is not None else DEFAULT_ADMIN_LISTEN, s.path("listen")),
        token_file=s.file("token_file"),
        tls=_listener_tls(s),
        insecure_listen=s.boolean("insecure_listen", False),
        health_public=s.boolean("health_public", False),
        idle_timeout_s=s.number("idle_timeout_s", DEFAULT_ADMIN_IDLE_TIMEOUT_S, above=0),
        request_timeout_s=s.number("request_timeout_s", DEFAULT_ADMIN_REQUEST_TIMEOUT_S, above=0),
        max_body_bytes=s.integer("max_body_bytes", DEFAULT_ADMIN_MAX_BODY, minimum=1024),
        max_connections=s.integer("max_connections", DEFAULT_ADMIN_MAX_CONNECTIONS, minimum=1),
    )
    s.finish()
    if admin.beyond_loopback and admin.tls is None and not admin.insecure_listen:
        raise ConfigError(
            s.path("listen"),
            f"{admin.listen} is reachable beyond this machine, and the admin token would cross the "
            "network in clear: set admin.tls (cert, key) or, knowingly, admin.insecure_listen: true",
        )
    return admin


def default_instance() -> str:
    """The host name: what tells proxies apart in a shared store when the config names none."""
    import socket

    return socket.gethostname() or "harness"


def _store_target(text: str) -> Path | str:
    """`store:` as the proxy opens it: a PostgreSQL URL stays text (checked here), the rest is a path."""
    from harness.store import StoreError, is_url, parse_location

    try:
        location = parse_location(text)
    except StoreError as exc:
        raise ConfigError("store", str(exc)) from None
    if is_url(text):
        return str(location.url)
    assert location.path is not None
    return location.path


def _store_section(s: Section) -> tuple[Path | str, Any]:
    """`store: {path: ..., encryption: {key_file | key_env, algorithm}}`."""
    from harness.store import StoreError
    from harness.store.crypto import ALGORITHMS, KeySource

    path = s.text("path")
    target = _store_target(path) if path else DEFAULT_STORE
    raw = s.raw("encryption")
    s.finish()
    if raw is None:
        return target, None
    e = Section(raw, "store.encryption")
    key_file, key_env = e.file("key_file"), e.text("key_env")
    algorithm = e.choice("algorithm", tuple(ALGORITHMS), "aes-256-gcm")
    e.finish()
    if (key_file is None) == (key_env is None):
        raise ConfigError(
            "store.encryption", "give the key's place: key_file (a file of its own, mode 0600) or key_env "
            "(the name of an environment variable holding it), one of the two"
        )  # fmt: skip
    source = KeySource(key_file.resolve() if key_file else None, key_env, algorithm)
    try:  # a key that will not do fails here, naming the setting, not at the first capture
        source.load()
    except StoreError as exc:
        raise ConfigError(e.path("key_file" if key_file else "key_env"), str(exc)) from None
    return target, source


def parse_config(data: Any, source: str = "<config>") -> ProxyConfig:
    """Validate an already-loaded YAML document; raises ConfigError naming the key path."""
    if data is None:
        data = {}
    root = Section(data, "")
    store = root.raw("store")
    store_path: Path | str
    encryption = None
    if isinstance(store, Mapping):
        store_path, encryption = _store_section(Section(store, "store"))
    elif store is None:
        store_path = DEFAULT_STORE
    elif isinstance(store, str) and store.strip():
        store_path = _store_target(store.strip())
    else:
        raise ConfigError(
            "store",
            f"expected a file path, a postgresql:// URL or a mapping (path, encryption), got {_show(store)}",
        )
    instance = root.raw("instance")
    if instance is None:
        instance = default_instance()
    elif not isinstance(instance, str) or not instance.strip() or len(instance.strip()) > 128:
        raise ConfigError("instance", f"expected a name of 1 to 128 characters, got {_show(instance)}")
    instance = instance.strip()
    admin = _admin(root)
    raw_channels = root.raw("channels")
    if raw_channels is None:
        raise ConfigError("channels", "required: at least one channel")
    if not isinstance(raw_channels, Mapping) or not raw_channels:
        raise ConfigError(
            "channels", f"expected a mapping of channel name to settings, got {_show(raw_channels)}"
        )
    channels: dict[str, ChannelConfig] = {}
    seen: dict[Address, str] = {}
    for name, body in raw_channels.items():
        if not isinstance(name, str) or not name or not name.replace("-", "").replace("_", "").isalnum():
            raise ConfigError(f"channels.{name}", "a channel name is letters, digits, '-' and '_'")
        channel = parse_channel(body, name)
        if channel.listen.port and channel.listen in seen:
            raise ConfigError(
                f"channels.{name}.listen",
                f"{channel.listen} is already the listen address of channel {seen[channel.listen]!r}",
            )
        seen[channel.listen] = name
        channels[name] = channel
    if admin is not None and admin.listen.port and admin.listen in seen:
        raise ConfigError(
            "admin.listen", f"{admin.listen} is also the listen address of channel {seen[admin.listen]!r}"
        )
    root.finish()
    return ProxyConfig(
        store=store_path, store_encryption=encryption, instance=instance, admin=admin, channels=channels,
        source=source,
    )  # fmt: skip


def load_config(path: str | Path) -> ProxyConfig:
    """Read and validate a YAML config file; raises ConfigError (also for unreadable or non-YAML files)."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("", f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError("", f"{str(path)!r} is not UTF-8 text (byte {exc.start})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError("", f"{str(path)!r} is not valid YAML{where}: {problem}") from None
    return parse_config(data, source=str(path))
