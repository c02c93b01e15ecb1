"""The switchover drill's I/O shell: senders, the switch command, the proxy child, the evidence.

Senders behave as a careful HIS does: one MLLP connection each (patients are pinned to a connection, so a
patient's messages go in order), stop-and-wait, and a failed message (closed, timed out, refused, AR/CR) is
sent again after `retry_interval_s` until it is acknowledged or the drill ends; later messages wait behind it
and go out as fast as allowed once it is through. Messages are due at `rate` a second from the start; a
sender that falls behind catches up without pause. After `duration_s`, no new message is made; messages
still unacknowledged are retried for up to `drain_s`.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from harness import __version__
from harness.drill.analysis import (
    Attempt,
    DrillLimits,
    SentMessage,
    Switch,
    analyse,
    capture_deliveries,
    log_deliveries,
)
from harness.drill.traffic import Traffic, control_id, id_pattern, new_run_id
from harness.exchange import iso_time
from harness.mllp_client import MLLPClient

OUTPUT_KEPT = 4000
"""Characters of the switch command's output kept in the report."""


class DrillError(Exception):
    """The drill cannot run as set up (the message says what to change)."""


@dataclass(slots=True)
class DrillSettings:
    config_path: Path
    channel: str
    rate: float
    duration_s: float
    switch_cmd: str | None = None
    switch_at_s: float | None = None
    patients: int = 10
    message_type: str = "ADT^A08"
    connections: int = 1
    timeout_s: float = 5.0
    retry_interval_s: float = 0.5
    drain_s: float = 30.0
    received: list[Path] = field(default_factory=list)
    start_proxy: bool = False
    target: tuple[str, int] | None = None
    """Where senders connect; default: the channel's listen address (loopback for a wildcard)."""
    limits: DrillLimits = field(default_factory=DrillLimits)
    operator: str | None = None
    witness: str | None = None


def run_drill(settings: DrillSettings, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the drill and return its report (analysis, settings, timeline); DrillError when it cannot run."""
    from harness.proxy.config import ConfigError, load_config

    try:
        config = load_config(settings.config_path)
    except ConfigError as exc:
        raise DrillError(f"--config: {exc}") from None
    channel = config.channels.get(settings.channel)
    if channel is None:
        raise DrillError(
            f"--channel {settings.channel!r}: not in {settings.config_path}; channels: "
            f"{', '.join(config.channels)}"
        )
    if channel.protocol != "mllp":
        raise DrillError(
            f"--channel {settings.channel!r} is {channel.protocol}: the switchover drill sends HL7 "
            "v2 over MLLP"
        )
    upstreams = [str(a) for a in channel.upstreams]
    proxy = _ProxyChild(settings.config_path, settings.channel) if settings.start_proxy else None
    try:
        target = settings.target or (
            proxy.address if proxy else _connectable(channel.listen.host, channel.listen.port)
        )
        if target[1] == 0:
            raise DrillError(
                f"channels.{settings.channel}.listen has port 0: pass --start-proxy so the drill "
                "learns the port, or --target HOST:PORT"
            )
        _reachable(target)
        run = new_run_id()
        traffic = Traffic(run, patients=settings.patients, message_type=settings.message_type)
        say(
            f"drill {run}: {settings.rate:g} msg/s for {settings.duration_s:g} s to channel "
            f"{settings.channel} at {target[0]}:{target[1]} (upstreams: {', '.join(upstreams)})"
        )
        started = time.time()
        messages, switch = _send(settings, traffic, target, started, say)
        finished = time.time()
        if proxy is not None:
            proxy.stop()
        captured = (
            _captured(config.store, settings.channel, started, run) if channel.capture != "off" else None
        )
        report = _report(settings, run, upstreams, target, started, finished, messages, switch, captured, say)
        report["proxy_log"] = proxy.lines[-40:] if proxy is not None else None
        return report
    finally:
        if proxy is not None:
            proxy.stop()


def _reachable(target: tuple[str, int]) -> None:
    try:
        socket.create_connection(target, timeout=5.0).close()
    except OSError as exc:
        raise DrillError(
            f"nothing accepts connections at {target[0]}:{target[1]} ({exc.strerror or exc}): "
            "start the proxy, or pass --start-proxy"
        ) from None


def _connectable(host: str, port: int) -> tuple[str, int]:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1", port
    if host == "::":
        return "::1", port
    return host, port


def _send(
    settings: DrillSettings,
    traffic: Traffic,
    target: tuple[str, int],
    started: float,
    say: Callable[[str], None],
) -> tuple[list[SentMessage], Switch]:
    total = max(1, int(settings.rate * settings.duration_s))
    messages = [
        SentMessage(seq, control_id(traffic.run, seq), traffic.patient_of(seq), seq // traffic.patients)
        for seq in range(total)
    ]
    deadline = started + settings.duration_s + settings.drain_s
    stop = threading.Event()
    switch = Switch(command=settings.switch_cmd)
    threads = [
        threading.Thread(
            target=_sender,
            name=f"drill-sender-{i}",
            daemon=True,
            args=(i, settings, traffic, target, messages, started, deadline, stop),
        )
        for i in range(settings.connections)
    ]
    switcher = None
    if settings.switch_at_s is not None or settings.switch_cmd is not None:
        switcher = threading.Thread(target=_switch, args=(settings, switch, started, stop, say), daemon=True)
        switcher.start()
    else:
        say("no --switch-cmd: switch the engine from primary to backup by hand while the drill runs")
    for t in threads:
        t.start()
    try:
        for t in threads:
            while t.is_alive():
                t.join(0.2)
    except KeyboardInterrupt:
        stop.set()
        say("interrupted: finishing the report with what was sent so far")
        for t in threads:
            t.join(settings.timeout_s + 1)
    stop.set()
    if switcher is not None:
        switcher.join(1.0)
    return messages, switch


def _sender(
    index: int,
    settings: DrillSettings,
    traffic: Traffic,
    target: tuple[str, int],
    messages: list[SentMessage],
    started: float,
    deadline: float,
    stop: threading.Event,
) -> None:
    client = MLLPClient(
        target[0],
        target[1],
        timeout=settings.timeout_s,
        connect_timeout=min(settings.timeout_s, 5.0),
        resend_stale=False,
    )
    try:
        for sent in messages:
            if sent.patient % settings.connections != index:
                continue
            due = started + sent.seq / settings.rate
            if stop.wait(max(0.0, due - time.time())):
                return
            payload = traffic.message(sent.seq).payload  # MSH-7: now, when it is first sent
            while not stop.is_set():
                at = time.time()
                result = client.send(payload, sent.control_id)
                attempt = _attempt(result, at, time.time())
                sent.attempts.append(attempt)
                if attempt.result in ("ack", "rejected") or time.time() >= deadline:
                    break
                if attempt.result != "nak":
                    client.close()  # what was left of the connection is no use: the next try reconnects
                if stop.wait(settings.retry_interval_s):
                    return
            if time.time() >= deadline:
                return
    finally:
        client.close()


def _attempt(result: Any, at: float, ended: float) -> Attempt:
    """A send result in the drill's terms."""
    code = result.ack_code
    resent = any("sent again" in note for note in result.notes)
    if result.outcome in ("ok", "no_ack_expected"):
        kind = "ack"
    elif result.outcome == "nak":
        kind = "rejected" if code in ("AE", "CE") else "nak"
    elif result.outcome == "timeout":
        kind = "timeout"
    elif result.outcome == "upstream_down":
        kind = "refused" if result.error_kind == "connect" else "closed"
    else:
        kind = "error"
    return Attempt(at, ended, kind, code, result.ack_text or result.error, resent)


def _switch(
    settings: DrillSettings, switch: Switch, started: float, stop: threading.Event, say: Callable[[str], None]
) -> None:
    at = started + (settings.switch_at_s if settings.switch_at_s is not None else settings.duration_s / 3)
    if stop.wait(max(0.0, at - time.time())):
        return
    switch.at = time.time()
    if settings.switch_cmd is None:
        say(f"{iso_time(switch.at)} switch the engine from primary to backup NOW")
        return
    say(f"{iso_time(switch.at)} switching: {settings.switch_cmd}")
    try:
        done = subprocess.run(
            settings.switch_cmd,
            shell=True,
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        switch.exit_code = done.returncode
        switch.output = (done.stdout + done.stderr)[-OUTPUT_KEPT:]
    except subprocess.TimeoutExpired as exc:
        switch.exit_code = None
        switch.output = f"the switch command was still running after {exc.timeout:g} s and was stopped"
    switch.ended = time.time()
    say(
        f"{iso_time(switch.ended)} switch command exited {switch.exit_code} after "
        f"{switch.ended - switch.at:.2f} s"
    )


def _captured(store_path: Path, channel: str, started: float, run: str) -> list[tuple] | None:
    """(control id, started at, upstream, outcome) of the drill's exchanges in the capture store."""
    from harness.store import ExchangeFilter, Store, StoreError

    if not Path(store_path).exists():
        return None
    prefix = run
    previous = -1
    rows: list[tuple] = []
    for _ in range(20):  # a fast-mode channel commits within 100 ms; wait until the count settles
        try:
            with Store(store_path, create=False) as store:
                flt = ExchangeFilter(channel=channel, since=started - 1.0, replays=False)
                rows = [
                    (ex.control_id, ex.started_at, ex.upstream_addr, ex.outcome)
                    for ex in store.query(flt, bodies=False)
                    if ex.control_id and ex.control_id.startswith(prefix)
                ]
        except StoreError:
            return None
        if len(rows) == previous:
            break
        previous = len(rows)
        time.sleep(0.25)
    return rows


def _report(
    settings: DrillSettings,
    run: str,
    upstreams: list[str],
    target: tuple[str, int],
    started: float,
    finished: float,
    messages: list[SentMessage],
    switch: Switch,
    captured: list[tuple] | None,
    say: Callable[[str], None],
) -> dict[str, Any]:
    ids = {m.control_id for m in messages}
    pattern = id_pattern(run)
    captured_deliveries = capture_deliveries(captured, ids) if captured is not None else None
    if settings.received:
        files = []
        for path in settings.received:
            try:
                files.append((path.name, path.read_text(encoding="utf-8", errors="replace").splitlines()))
            except OSError as exc:
                raise DrillError(f"--received {path}: {exc.strerror or exc}") from None
        deliveries = log_deliveries(files, pattern, ids)
        evidence = "engine logs: " + ", ".join(str(p) for p in settings.received)
    elif captured_deliveries is not None:
        deliveries = captured_deliveries
        evidence = "the proxy's capture store (exchanges the upstream answered)"
    else:
        deliveries = []
        evidence = (
            "none (no --received logs and no capture store): only acknowledged messages count as delivered"
        )
    result = analyse(
        messages,
        switch,
        deliveries,
        evidence=evidence,
        upstreams=upstreams,
        captured=captured_deliveries,
        limits=settings.limits,
    )
    result["timeline"] = _timeline(messages, captured_deliveries, upstreams, started, finished)
    result["run"] = {
        "report": "switchover drill",
        "run_id": run,
        "harness_version": __version__,
        "started": iso_time(started),
        "finished": iso_time(finished),
        "started_local": _local(started),
        "finished_local": _local(finished),
        "config": str(settings.config_path),
        "channel": settings.channel,
        "target": f"{target[0]}:{target[1]}",
        "upstreams": upstreams,
        "rate": settings.rate,
        "duration_s": settings.duration_s,
        "patients": settings.patients,
        "message_type": settings.message_type,
        "connections": settings.connections,
        "timeout_s": settings.timeout_s,
        "retry_interval_s": settings.retry_interval_s,
        "drain_s": settings.drain_s,
        "max_outage_s": settings.limits.max_outage_s,
        "max_duplicates": settings.limits.max_duplicates,
    }
    result["switch"] = {
        "command": switch.command,
        "at": iso_time(switch.at) if switch.at else None,
        "at_local": _local(switch.at) if switch.at else None,
        "at_s": round(switch.at - started, 3) if switch.at else None,
        "ended": iso_time(switch.ended) if switch.ended else None,
        "exit_code": switch.exit_code,
        "output": switch.output,
    }
    result["signoff"] = {"operator": settings.operator, "witness": settings.witness}
    say(
        f"drill {run}: {result['verdict']}: {result['sent']} sent, {result['acknowledged']} acknowledged, "
        f"{result['lost']} lost, {result['duplicated']} duplicated, {result['reordered']} reordered"
    )
    return result


TIMELINE_STEPS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300)


def _timeline(
    messages: list[SentMessage], captured: list | None, upstreams: list[str], started: float, finished: float
) -> dict[str, Any]:
    """Per step (at most ≈150 of them): acknowledgements by the upstream that took the message (from the
    capture), and failed attempts, so a sub-second outage shows in a short drill."""
    span = max(finished - started, 0.1)
    step = next((s for s in TIMELINE_STEPS if span / s <= 150), TIMELINE_STEPS[-1])
    buckets = int(span / step) + 1
    failed = [0] * buckets
    acked = [0] * buckets
    for m in messages:
        for a in m.attempts:
            i = int((a.ended - started) / step)
            if 0 <= i < buckets:
                if a.result in ("ack", "rejected"):
                    acked[i] += 1
                else:
                    failed[i] += 1
    by_upstream: dict[str, list[int]] = {}
    for d in captured or ():
        i = int(((d.at or started) - started) / step)
        if 0 <= i < buckets and d.upstream:
            by_upstream.setdefault(d.upstream, [0] * buckets)[i] += 1
    order = sorted(by_upstream, key=lambda u: upstreams.index(u) if u in upstreams else len(upstreams))
    return {
        "start": started,
        "step_s": step,
        "acknowledged": acked,
        "failed": failed,
        "by_upstream": {u: by_upstream[u] for u in order},
    }


def _local(epoch: float) -> str:
    return datetime.fromtimestamp(epoch).astimezone().isoformat(timespec="milliseconds")


class _ProxyChild:
    """`harness proxy --config FILE` for the drill's duration, stopped (and its store flushed) at the end."""

    def __init__(self, config: Path, channel: str) -> None:
        from harness.child_output import ChildExited, ChildOutput, OutputTimeout

        # in the drill's own process group: what stops the drill (Ctrl-C, a kill of the group) stops it too
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "harness", "proxy", "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        self.output = ChildOutput(self.proc)
        self.lines = self.output.lines
        pattern = re.compile(rf"channel {re.escape(channel)} listening on (?:\[([^\]]+)\]|([^:\s]+)):(\d+)")
        try:
            m = self.output.wait_for(pattern, 30.0)
        except (ChildExited, OutputTimeout) as exc:
            self.stop()
            raise DrillError(
                f"--start-proxy: the proxy did not start ({exc}): {' | '.join(self.lines[-5:])}"
            ) from None
        self.address = _connectable(m.group(1) or m.group(2), int(m.group(3)))

    def stop(self) -> None:
        """SIGTERM (the proxy flushes its store and stops its writer), SIGKILL if it lingers."""
        for stop in (self.proc.terminate, self.proc.kill):
            if self.proc.poll() is not None:
                break
            stop()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                continue
        self.output.join(timeout=2)
