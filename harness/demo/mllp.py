"""`harness demo`: the main job on embedded defaults, as a list of steps sharing one context.

At this stage: start `harness mock mllp` on a free loopback port (a child process), send the HL7 v2
fixtures to it with the `harness send` client, stop it, and judge the run. Later steps (the proxy,
the capture store, reports) slot in between by reading and changing ``DemoContext.target``, so
senders go wherever the chain now starts. Every child is stopped at the end, also after a failure
or Ctrl-C.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from harness.child_output import LISTENING, ChildExited, ChildOutput, OutputTimeout

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures" / "hl7v2"


class DemoFailure(Exception):
    """A step could not do its job; the message says what and why."""


class Child:
    """A `harness ...` child process in its own process group, its output collected by a thread."""

    def __init__(self, name: str, args: list[str]) -> None:
        self.name = name
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "harness", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        self.output = ChildOutput(self.proc)
        self.lines = self.output.lines

    def wait_for(self, pattern: re.Pattern[str], timeout: float) -> re.Match[str]:
        try:
            return self.output.wait_for(pattern, timeout)
        except ChildExited as exc:
            raise DemoFailure(
                f"{self.name} exited with {exc.returncode}: " + " | ".join(exc.lines[-5:])
            ) from None
        except OutputTimeout:
            raise DemoFailure(f"{self.name} did not start within {timeout:g} s") from None

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM the group, then SIGKILL if it lingers; returns the exit code."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if self.proc.poll() is not None:
                break
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                continue
        self.proc.wait()
        self.output.join(timeout=2)
        if self.proc.stdout:
            self.proc.stdout.close()
        return self.proc.returncode


@dataclass
class DemoContext:
    fixtures: Path
    echo: Callable[[str], None]
    timeout: float = 10.0
    target: tuple[str, int] | None = None  # where senders send; each step in the chain may move it
    children: dict[str, Child] = field(default_factory=dict)
    results: list = field(default_factory=list)  # harness.send.Sent

    def start_child(self, name: str, args: list[str], startup_timeout: float = 30.0) -> tuple[str, int]:
        child = Child(name, args)
        self.children[name] = child
        m = child.wait_for(LISTENING, startup_timeout)
        return (m.group("v6") or m.group("v4")), int(m.group("port"))

    def stop_children(self) -> None:
        for child in reversed(list(self.children.values())):
            child.stop()


class Step(Protocol):
    name: str

    def run(self, ctx: DemoContext) -> None: ...


class StartMockMLLP:
    name = "start harness mock mllp"

    def run(self, ctx: DemoContext) -> None:
        host, port = ctx.start_child("mock mllp", ["mock", "mllp", "--listen", "127.0.0.1:0"])
        ctx.target = (host, port)
        ctx.echo(f"  harness mock mllp listening on {host}:{port}")


class SendFixtures:
    name = "send the HL7 v2 fixtures with harness send"

    def run(self, ctx: DemoContext) -> None:
        from harness.hl7v2.files import HL7FileError, iter_messages
        from harness.mllp_client import MLLPClient
        from harness.send import send_messages

        if ctx.target is None:
            raise DemoFailure("nothing to send to: no listener was started")
        try:
            messages = list(iter_messages([ctx.fixtures]))
        except HL7FileError as exc:
            raise DemoFailure(str(exc)) from None
        if not messages:
            raise DemoFailure(f"no HL7 v2 messages in {ctx.fixtures}")
        host, port = ctx.target

        def emit(sent) -> None:
            ctx.results.append(sent)
            ctx.echo("  " + sent.line().replace(str(ROOT) + os.sep, ""))

        with MLLPClient(host, port, timeout=ctx.timeout) as client:
            summary = send_messages(client, messages, emit)
        if summary.connect_failed:
            raise DemoFailure(f"could not connect to {host}:{port}")


class StopChildren:
    name = "stop the child processes"

    def run(self, ctx: DemoContext) -> None:
        for name, child in ctx.children.items():
            code = child.stop()
            log = [line for line in child.lines if line.startswith("#")]
            ctx.echo(f"  {name}: exit {code}, {len(log)} message(s) logged")
            for line in log:
                ctx.echo(f"    {line}")
            if code != 0:
                raise DemoFailure(f"{name} exited with {code}")


class Judge:
    name = "check the results"

    def run(self, ctx: DemoContext) -> None:
        bad = [s for s in ctx.results if not s.result.accepted]
        if not ctx.results:
            raise DemoFailure("no message was sent")
        if bad:
            raise DemoFailure(
                f"{len(bad)} of {len(ctx.results)} message(s) not accepted: "
                + ", ".join(f"{s.result.control_id} ({s.result.ack_code or s.result.error})" for s in bad)
            )
        logged = sum(
            1 for child in ctx.children.values() for line in child.lines if line.startswith("#")
        )
        if "mock mllp" in ctx.children and logged != len(ctx.results):
            raise DemoFailure(f"the mock logged {logged} message(s), {len(ctx.results)} were sent")
        ctx.echo(f"  {len(ctx.results)} message(s) sent, all accepted (AA/CA)")


class ProxyRun:
    """What the proxy steps share: the proxy's files under reports/ and its admin API."""

    def __init__(self, reports: Path = ROOT / "reports") -> None:
        self.reports = reports
        self.store = reports / "demo-captures.db"
        self.config = reports / "demo-proxy.yaml"
        self.token = ""
        self.admin_url: str | None = None
        self.fault_rules = 0


_TOKEN_ENV = "HARNESS_ADMIN_TOKEN"
_ADMIN = re.compile(r"admin API listening on (?P<host>[^\s]+):(?P<port>\d+)")


class StartProxy:
    name = "start harness proxy in front of it (capture store under reports/)"

    def __init__(self, run: ProxyRun) -> None:
        self.run_state = run

    def run(self, ctx: DemoContext) -> None:
        import secrets

        state = self.run_state
        if ctx.target is None:
            raise DemoFailure("no upstream to put the proxy in front of")
        from harness.private_files import private_dir, write_private

        private_dir(state.reports)
        for suffix in ("", "-wal", "-shm"):  # a fresh store for every demo run
            Path(f"{state.store}{suffix}").unlink(missing_ok=True)
        state.token = secrets.token_hex(16)
        host, port = ctx.target
        write_private(
            state.config,
            "# written by `harness demo`\n"
            f"store: {state.store}\n"
            "admin: {listen: '127.0.0.1:0'}  # token: HARNESS_ADMIN_TOKEN in the proxy's environment\n"
            "channels:\n"
            "  demo:\n"
            "    listen: 127.0.0.1:0\n"
            f"    upstream: {host}:{port}\n"
            "    capture: durable\n"
            "    ack_timeout_s: 10\n",
            force=True,
        )
        saved = os.environ.get(_TOKEN_ENV)
        os.environ[_TOKEN_ENV] = state.token  # the child inherits it; never written to a file
        try:
            phost, pport = ctx.start_child("proxy", ["proxy", "--config", str(state.config)])
        finally:
            if saved is None:
                os.environ.pop(_TOKEN_ENV, None)
            else:
                os.environ[_TOKEN_ENV] = saved
        admin = ctx.children["proxy"].wait_for(_ADMIN, 30)
        state.admin_url = f"http://{admin.group('host')}:{admin.group('port')}"
        ctx.target = (phost, pport)
        ctx.echo(f"  harness proxy listening on {phost}:{pport} -> {host}:{port}")
        ctx.echo(f"  capture store {_shown(state.store)} (durable)")
        ctx.echo(f"  admin API on {state.admin_url}")


class AddFaults:
    name = "add a NAK fault and a delay through the admin API (harness fault add)"

    RULES = (
        ["--type", "nak", "--code", "AE", "--text", "demo: ward closed", "--message-type", "ADT^A08",
         "--limit", "1"],
        ["--type", "delay", "--ms", "300", "--message-type", "ORU^R01"],
    )  # fmt: skip

    def __init__(self, run: ProxyRun) -> None:
        self.run_state = run

    def run(self, ctx: DemoContext) -> None:
        state = self.run_state
        for rule in self.RULES:
            args = ["fault", "add", "demo", "--admin", state.admin_url]
            out = _harness(args + rule, ctx.timeout, env={_TOKEN_ENV: state.token})
            ctx.echo("  " + out.strip().replace("\n", "\n  "))
            state.fault_rules += 1


class CaptureSummary:
    name = "print the capture summary (harness capture summary)"

    def __init__(self, run: ProxyRun) -> None:
        self.run_state = run

    def run(self, ctx: DemoContext) -> None:
        state = self.run_state
        out = _harness(["capture", "summary", "--store", str(state.store)], ctx.timeout)
        for line in out.rstrip().splitlines():
            ctx.echo("  " + line)


class JudgeProxied:
    name = "check the results through the proxy"

    def __init__(self, run: ProxyRun) -> None:
        self.run_state = run

    def run(self, ctx: DemoContext) -> None:
        from harness.store import ExchangeFilter, Store

        if not ctx.results:
            raise DemoFailure("no message was sent")
        naks = [s for s in ctx.results if not s.result.accepted]
        expected_nak = [s for s in naks if s.result.ack_code == "AE"]
        if len(naks) != 1 or len(expected_nak) != 1:
            raise DemoFailure(
                f"expected exactly the one NAK the fault rule injects, got {len(naks)}: "
                + ", ".join(f"{s.result.control_id} ({s.result.ack_code or s.result.error})" for s in naks)
            )
        store = Store(self.run_state.store)
        try:
            rows = list(store.query(ExchangeFilter()))
        finally:
            store.close()
        if len(rows) != len(ctx.results):
            raise DemoFailure(f"{len(ctx.results)} message(s) sent but {len(rows)} exchange(s) captured")
        faulted = [ex for ex in rows if ex.fault]
        kinds = sorted({ex.fault["action"] for ex in faulted})
        if kinds != ["delay", "nak"]:
            raise DemoFailure(f"expected exchanges with a nak and a delay fault on record, got {kinds}")
        logged = sum(1 for line in ctx.children["mock mllp"].lines if line.startswith("#"))
        if logged != len(ctx.results) - 1:
            raise DemoFailure(f"the upstream saw {logged} message(s); expected all but the NAKed one")
        ctx.echo(
            f"  {len(ctx.results)} message(s) through the proxy: {len(ctx.results) - 1} accepted by the "
            f"upstream, 1 NAKed by the fault rule; {len(rows)} exchange(s) captured, {len(faulted)} with "
            "a fault on record"
        )


def _shown(path: Path) -> str:
    return str(path).replace(str(ROOT) + os.sep, "")


def _harness(args: list[str], timeout: float, env: dict[str, str] | None = None) -> str:
    """Run `harness ARGS` and return its output; a failure is a DemoFailure with that output."""
    proc = subprocess.run(
        [sys.executable, "-m", "harness", *args],
        capture_output=True,
        text=True,
        timeout=max(30.0, timeout * 3),
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )
    if proc.returncode != 0:
        raise DemoFailure(f"harness {' '.join(args[:2])} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


def default_steps() -> list[Step]:
    from harness.demo_certify import CertifyMedins  # a short contract suite of the medins simulator
    from harness.demo_http import http_steps  # medins visit and FHIR Patient through the HTTP proxy

    proxy = ProxyRun()
    return [
        StartMockMLLP(),
        StartProxy(proxy),
        AddFaults(proxy),
        SendFixtures(),
        StopChildren(),
        CaptureSummary(proxy),
        JudgeProxied(proxy),
        *http_steps(),
        CertifyMedins(),
    ]


def run(
    fixtures: Path = FIXTURES,
    *,
    echo: Callable[[str], None] = print,
    steps: list[Step] | None = None,
    timeout: float = 10.0,
) -> int:
    """Run the steps in order; 0 when all succeeded, 1 on a failure, 130 on Ctrl-C."""
    ctx = DemoContext(fixtures=fixtures, echo=echo, timeout=timeout)
    steps = default_steps() if steps is None else steps
    try:
        for number, step in enumerate(steps, start=1):
            echo(f"[{number}/{len(steps)}] {step.name}")
            step.run(ctx)
    except DemoFailure as exc:
        echo(f"demo FAILED: {exc}")
        return 1
    except KeyboardInterrupt:
        echo("demo interrupted")
        return 130
    finally:
        ctx.stop_children()
    echo("demo OK")
    return 0
