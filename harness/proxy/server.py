"""The proxy process: every channel of a config in one Twisted reactor, the capture writers, the admin API.

`ProxyServer.start()` builds and listens (raising `StartError` with a clear message for a port in use
or a store that cannot be opened, so the command exits 2); `stop()` stops listening and flushes the
capture writers, run on SIGTERM/SIGINT through the reactor's shutdown trigger.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from harness.proxy.config import Address, ProxyConfig
from harness.tls import TLSError
from harness.tls import describe as describe_tls

DURABLE_COMMIT_DELAY_S = 0.001
"""Longest a durable commit waits for the captures of requests still awaiting their replies; only
requests forwarded within this long count, so a slow reply (a slow upstream, a drop fault) does not
make every commit wait."""


class StartError(Exception):
    """The proxy cannot start (port in use, store unusable); the message says what and where."""


class Log:
    """Plain lines on stderr (stdout for the listening lines), or JSON lines with --json-log."""

    def __init__(self, json_lines: bool = False) -> None:
        self.json_lines = json_lines

    def __call__(self, level: str, message: str, **fields: Any) -> None:
        self.emit(level, message, sys.stderr, **fields)

    def out(self, message: str, **fields: Any) -> None:
        """A line for people and scripts on stdout; the fields appear only in JSON lines."""
        if self.json_lines:
            self.emit("info", message, sys.stdout, **fields)
        else:
            print(message, flush=True)

    def emit(self, level: str, message: str, stream: Any, **fields: Any) -> None:
        if self.json_lines:
            record = {"time": round(time.time(), 3), "level": level, "message": message, **fields}
            line = json.dumps(record, ensure_ascii=False, default=str)
        else:
            extra = " ".join(f"{k}={v}" for k, v in fields.items() if v not in (None, ""))
            prefix = "" if level == "info" else f"{level}: "
            line = f"{prefix}{message}{' ' + extra if extra else ''}"
        print(line, file=stream, flush=True)


class ProxyServer:
    def __init__(
        self,
        config: ProxyConfig,
        reactor: Any = None,
        *,
        store: Path | str | None = None,
        log: Log | None = None,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.config = config
        self.reactor = reactor
        self.store_path: Path | str = _target(store) if store is not None else config.store
        self.log = log or Log()
        self.channels: dict[str, Any] = {}
        self.writers: dict[str, Any] = {}
        self.ports: list[Any] = []
        self.admin_port: Any = None
        self.admin_channels: dict[str, Any] = {}
        self.listening: dict[str, Address] = {}
        self.budget: Any = None
        self._stopped = False

    # -- start ---------------------------------------------------------------------------------------

    def start(self) -> None:
        from harness.proxy.faults.engine import FaultEngine
        from harness.proxy.limits import ConnectionBudget
        from harness.proxy.mllp.channel import MLLPChannel
        from harness.proxy.stats import ChannelStats

        try:
            budget = self.budget = ConnectionBudget(0)
            for name, cfg in self.config.channels.items():
                if cfg.protocol == "http":
                    from harness.proxy.http.channel import HTTPChannel as channel_class
                elif cfg.protocol == "mllp":
                    channel_class = MLLPChannel
                else:  # config refuses these; a guard for protocols added later
                    raise StartError(f"channels.{name}.protocol: {cfg.protocol!r} has no proxy here yet")
                engine = FaultEngine(name, cfg.protocol, cfg.faults)
                writer = self._writer(cfg.capture) if cfg.capture != "off" else None
                channel = channel_class(
                    cfg, self.reactor, faults=engine, stats=ChannelStats(), writer=writer, log=self.log,
                    budget=budget,
                )
                self.channels[name] = channel
            for name, channel in self.channels.items():
                self.ports.append(self._listen(name, channel))
            for name, channel in self.channels.items():
                scheme = getattr(channel.config, "upstream_scheme", None)
                ups = ", ".join(f"{scheme}://{a}" if scheme else str(a) for a in channel.config.upstreams)
                tls = describe_tls(channel.config.tls)
                self.log.out(
                    f"channel {name} listening on {self.listening[name]}{tls} -> {ups}",
                    channel=name,
                    capture=channel.config.capture,
                )
            self._start_admin()
            budget.measure()  # once every listener, writer and log file is open
        except TLSError as exc:  # a key that does not load, a cipher string OpenSSL refuses: say which
            self._close_partial()
            raise StartError(str(exc)) from None
        except BaseException:
            self._close_partial()
            raise
        self.reactor.addSystemEventTrigger("before", "shutdown", self.stop)
        self._record("proxy.start", self._started_details())

    # -- the audit trail ---------------------------------------------------------------------------------

    @property
    def audited(self) -> bool:
        """Whether this proxy records in an audit log: the one of its capture store, so only when some
        channel captures (a proxy that captures nothing has no store to write to)."""
        return any(cfg.capture != "off" for cfg in self.config.channels.values())

    def _config_hash(self) -> str | None:
        import hashlib

        try:
            return hashlib.sha256(Path(self.config.source).read_bytes()).hexdigest()
        except OSError:
            return None

    def _started_details(self) -> dict[str, Any]:
        admin = self.config.admin
        return {
            "config": self.config.source,
            "config_sha256": self._config_hash(),
            "instance": self.config.instance,
            "channels": {
                name: {
                    "listen": str(self.listening[name]),
                    "upstreams": [str(a) for a in channel.config.upstreams],
                    "capture": channel.config.capture,
                }
                for name, channel in self.channels.items()
            },
            "admin": str(admin.listen) if admin is not None and self.admin_port is not None else None,
        }

    def _audit(
        self, action: str, target: str, details: dict[str, Any], actor: dict[str, Any] | None = None
    ) -> None:
        """Append to the store's audit chain; AuditError (logged) when it cannot."""
        from harness.audit import AuditError, record

        try:
            record(self.store_path, action, target, details, actor=actor)
        except AuditError as exc:
            self.log("error", f"audit log: {action} not recorded: {exc}")
            raise

    def _record(self, action: str, details: dict[str, Any]) -> None:
        from harness.audit import AuditError

        if not self.audited:
            return
        try:
            self._audit(action, f"proxy {self.config.instance}", details)
        except AuditError:
            pass  # logged; the proxy keeps capturing

    def _writer(self, mode: str) -> Any:
        from harness.store import CaptureWriter

        if mode in self.writers:
            return self.writers[mode]
        try:
            if isinstance(self.store_path, Path):
                self.store_path.parent.mkdir(parents=True, exist_ok=True)
            # The store's connection in a child process (SQLite or PostgreSQL): the reactor's process
            # keeps its CPU and GIL for the traffic
            writer = CaptureWriter(
                self.store_path, mode, on_pressure=self._pressure, process=True,
                commit_delay_s=DURABLE_COMMIT_DELAY_S if mode == "durable" else 0.0,
                on_health=self._health, quick_check=not self.writers, instance=self.config.instance,
                encryption=self.config.store_encryption,
            )  # fmt: skip
            writer.siblings = lambda: sum(
                ch.awaiting(DURABLE_COMMIT_DELAY_S)
                for ch in list(self.channels.values())
                if getattr(ch, "writer", None) is writer and hasattr(ch, "awaiting")
            )
        except Exception as exc:  # noqa: BLE001 - any store failure is an environment error
            raise StartError(f"store {str(self.store_path)!r} cannot be opened: {exc}") from None
        self.writers[mode] = writer
        return writer

    def _health(self, health: Any) -> None:
        """Runs on a writer thread when the store stops or starts recording again."""

        def report() -> None:
            if health.ok:
                self.log("warning", f"capture store {self.store_path} records exchanges again")
            else:
                self.log(
                    "error",
                    f"capture store {self.store_path} cannot record exchanges: {health.reason}; durable "
                    "channels refuse new messages (on_store_error), fast channels relay them uncaptured",
                )

        self.reactor.callFromThread(report)

    def _pressure(self, on: bool) -> None:
        def apply() -> None:
            if on:
                self.log("warning", "capture store is falling behind: pausing reads from senders")
            for channel in self.channels.values():
                channel.pause_all(on)

        self.reactor.callFromThread(apply)

    def _listen(self, name: str, channel: Any) -> Any:
        from twisted.internet.error import CannotListenError

        listen = channel.config.listen
        try:
            port = channel.listen()
        except CannotListenError as exc:
            reason = _reason(exc)
            raise StartError(f"channels.{name}.listen: cannot listen on {listen}: {reason}") from None
        except TLSError:
            raise
        except Exception as exc:  # noqa: BLE001 - e.g. a TLS key that does not load
            raise StartError(f"channels.{name}: cannot start the listener on {listen}: {exc}") from None
        host = port.getHost()
        self.listening[name] = Address(listen.host, host.port)
        return port

    def _start_admin(self) -> None:
        admin = self.config.admin
        if admin is None:
            return
        from twisted.internet.error import CannotListenError

        from harness.proxy.admin import AdminChannel, AdminTokenError, load_token, start_admin

        try:
            token = load_token(admin.token_file)
        except AdminTokenError as exc:
            self.log("warning", str(exc))
            return
        for name, channel in self.channels.items():
            self.admin_channels[name] = AdminChannel(
                name=name,
                protocol=channel.config.protocol,
                listen=str(self.listening[name]),
                upstream=[str(a) for a in channel.config.upstreams],
                stats=channel.stats,
                faults=channel.faults,
                kind=channel.config.kind,
                store=channel.writer,
            )
        try:
            self.admin_port = start_admin(
                self.reactor, self.admin_channels, token, host=admin.listen.host, port=admin.listen.port,
                config=admin, log=self.log, audit=self._audit if self.audited else None,
            )
        except CannotListenError as exc:
            reason = _reason(exc)
            raise StartError(f"admin.listen: cannot listen on {admin.listen}: {reason}") from None
        port = self.admin_port.getHost().port
        tls = describe_tls(admin.tls)
        self.log.out(f"admin API listening on {Address(admin.listen.host, port)}{tls}", admin=True)

    def _close_partial(self) -> None:
        for port in self.ports:
            port.stopListening()
        if self.admin_port is not None:
            self.admin_port.stopListening()
        for writer in self.writers.values():
            writer.close()

    # -- stop ----------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop listening, close connections, flush every capture writer (runs once)."""
        if self._stopped:
            return
        self._stopped = True
        for port in self.ports:
            port.stopListening()
        if self.admin_port is not None:
            self.admin_port.stopListening()
        for channel in self.channels.values():
            for conn in list(channel.connections):
                shutdown = getattr(conn, "shutdown", None)
                if shutdown is not None:
                    shutdown()  # what is still in flight is captured before the writers flush
                conn.transport.loseConnection()
        written = failed = 0
        last_error = None
        for writer in self.writers.values():
            try:
                if not writer.flush(timeout=10):
                    self.log("error", f"capture writer did not finish in 10 s; {writer.pending} pending")
                    failed += writer.pending
                writer.close()
            except Exception as exc:  # noqa: BLE001 - report, keep stopping
                self.log("error", f"capture writer did not close cleanly: {exc}")
            written += getattr(writer, "written", 0)
            failed += getattr(writer, "errors", 0)
            last_error = getattr(writer, "last_error", None) or last_error
        line = f"proxy stopped; {written} exchange(s) captured to {self.store_path}"
        if failed:
            line += f"; {failed} exchange(s) could NOT be captured (last error: {last_error})"
        self.log("error" if failed else "info", line)
        self._record(
            "proxy.stop", {"captured": written, "not_captured": failed, "config_sha256": self._config_hash()}
        )


def _reason(exc: Any) -> str:
    err = getattr(exc, "socketError", None)
    return getattr(err, "strerror", None) or str(err or exc)


def _target(store: Path | str) -> Path | str:
    """A store given on the command line: a PostgreSQL URL stays text, anything else is a file path."""
    from harness.store import is_url

    return str(store).strip() if is_url(str(store)) else Path(store)


def run(config: ProxyConfig, *, store: Path | str | None = None, json_log: bool = False) -> int:
    """Run until SIGTERM/SIGINT; returns the exit code (2 when it cannot start)."""
    from harness.proxy.reactor import install

    reactor = install()

    log = Log(json_log)
    server = ProxyServer(config, reactor, store=store, log=log)
    try:
        server.start()
    except StartError as exc:
        log("error", str(exc))
        return 2
    reactor.run()
    return 0
