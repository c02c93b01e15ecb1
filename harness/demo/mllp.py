"""`harness demo`'s HL7 v2 steps: the mock ACK server, the proxy with fault rules, the fixtures sent.

`harness mock mllp` starts on a free loopback port (a child process), `harness proxy` goes in front of it
with a durable capture store and an admin API, two fault rules are added through that API, the fixtures
are sent with the `harness send` client, and the run is judged from the ACKs and the captured exchanges.
Each step reads and changes ``DemoContext.target`` so senders go wherever the chain now starts.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from harness.demo.context import DemoContext, DemoFailure, SharedStep, run_harness, shown


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
            name = _fixture_name(Path(sent.source), ctx.fixtures)
            ctx.echo("  " + sent.line().replace(str(sent.source), name))

        with MLLPClient(host, port, timeout=ctx.timeout) as client:
            summary = send_messages(client, messages, emit)
        if summary.connect_failed:
            raise DemoFailure(f"could not connect to {host}:{port}")


def _fixture_name(source: Path, fixtures: Path) -> str:
    """A fixture as `hl7v2/adt_a01_admit.hl7` when it is a shipped one, else as the user can type it."""
    try:
        return str(source.relative_to(fixtures.parent))
    except ValueError:
        return shown(source)


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
    """What the proxy steps share: the proxy's files in the demo's output folder and its admin API."""

    def __init__(self, reports: Path) -> None:
        self.reports = reports
        self.store = reports / "demo-captures.db"
        self.config = reports / "demo-proxy.yaml"
        self.token = ""
        self.admin_url: str | None = None
        self.fault_rules = 0


_TOKEN_ENV = "HARNESS_ADMIN_TOKEN"
_ADMIN = re.compile(r"admin API listening on (?P<host>[^\s]+):(?P<port>\d+)")


class StartProxy(SharedStep[ProxyRun]):
    name = "start harness proxy in front of it (durable capture store)"

    def run(self, ctx: DemoContext) -> None:
        import secrets

        state = self.state
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
        ctx.echo(f"  capture store {shown(state.store)} (durable)")
        ctx.echo(f"  admin API on {state.admin_url}")


class AddFaults(SharedStep[ProxyRun]):
    name = "add a NAK fault and a delay through the admin API (harness fault add)"

    RULES = (
        ["--type", "nak", "--code", "AE", "--text", "demo: ward closed", "--message-type", "ADT^A08",
         "--limit", "1"],
        ["--type", "delay", "--ms", "300", "--message-type", "ORU^R01"],
    )  # fmt: skip

    def run(self, ctx: DemoContext) -> None:
        state = self.state
        for rule in self.RULES:
            args = ["fault", "add", "demo", "--admin", state.admin_url]
            out = run_harness(args + rule, ctx.timeout, env={_TOKEN_ENV: state.token})
            ctx.echo("  " + out.strip().replace("\n", "\n  "))
            state.fault_rules += 1


class CaptureSummary(SharedStep[ProxyRun]):
    name = "print the capture summary (harness capture summary)"

    def run(self, ctx: DemoContext) -> None:
        state = self.state
        out = run_harness(["capture", "summary", "--store", str(state.store)], ctx.timeout)
        for line in out.rstrip().splitlines():
            ctx.echo("  " + line)


class JudgeProxied(SharedStep[ProxyRun]):
    name = "check the results through the proxy"

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
        store = Store(self.state.store)
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
