"""Serve the admin API over two channels without a proxy, for the real-socket admin and CLI tests.

Run as `python -m tests.proxy.admin_server [TOKEN_FILE] [--config PROXY_YAML]`; prints `ADMIN <port>`
once listening. With --config the `admin:` section of that proxy config applies (TLS, timeouts, limits,
health_public), as `harness proxy` applies it. The channels have
real `ChannelStats` and `FaultEngine`s; a timer feeds one sample message per tick through the "adt"
engine and counts its outcome, so rules added over HTTP visibly change the counters.
"""

from __future__ import annotations

import sys

from harness.proxy.admin import AdminChannel, AdminTokenError, load_token, start_admin
from harness.proxy.faults.context import FaultContext
from harness.proxy.faults.engine import FaultEngine
from harness.proxy.stats import ChannelStats

SAMPLE = b"MSH|^~\\&|HIS|HOSP|HC|HOSP|20260101120000||ADT^A01^ADT_A01|M1|P|2.5\rPID|1||900001^^^HOSP^MR\r"


def main() -> int:
    from twisted.internet import reactor, task

    args = sys.argv[1:]
    settings = None
    if "--config" in args:
        from harness.proxy.config import load_config

        at = args.index("--config")
        settings = load_config(args[at + 1]).admin
        del args[at : at + 2]
    try:
        token = load_token(args[0] if args else None)
    except AdminTokenError as exc:
        print(exc, flush=True)
        return 2
    channels = {
        "adt": AdminChannel(
            "adt", "mllp", "127.0.0.1:2575", ["127.0.0.1:12575"], ChannelStats(), FaultEngine("adt")
        ),
        "lab": AdminChannel(
            "lab", "mllp", "127.0.0.1:2576", ["127.0.0.1:12576"], ChannelStats(), FaultEngine("lab")
        ),
    }
    adt = channels["adt"]

    def tick() -> None:
        adt.stats.connection_opened()
        fault = adt.faults.decide("request", SAMPLE, None, FaultContext(channel="adt"))
        adt.stats.bytes_in += len(SAMPLE)
        adt.stats.outcome("fault" if fault else "ok")
        adt.stats.observe_latency(0.002)
        adt.stats.connection_closed()

    task.LoopingCall(tick).start(0.02)
    def log(level: str, message: str) -> None:
        print(f"{level}: {message}", flush=True)

    port = start_admin(reactor, channels, token, "127.0.0.1", 0, config=settings, log=log)
    print(f"ADMIN {port.getHost().port}", flush=True)
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())


def start(processes, token: str | None, *args: str, timeout: float = 20.0) -> tuple[object, int]:
    """Start this server under the test's `processes` fixture; returns (process, port)."""
    from tests.childproc import Child

    env = {"HARNESS_ADMIN_TOKEN": token or ""}
    child = Child(processes.start([sys.executable, "-m", "tests.proxy.admin_server", *args], env=env))
    return child.proc, child.listening(r"^ADMIN (\d+)", timeout)
