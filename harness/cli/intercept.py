"""`harness intercept`: mitmdump with the harness capture addon, as a child process.

For clients that cannot be re-pointed at `harness proxy`: they use this as their HTTP proxy (regular
mode) and every flow lands in the capture store. mitmproxy runs in its own process, as upstream
supports it; HTTPS interception needs mitmproxy's CA trusted by the client (see mitmproxy's docs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.cli._common import fail_usage, parse_hostport
from harness.cli._options import DEFAULT_STORE, StoreOpt
from harness.codecs import KINDS as HTTP_KINDS


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    @app.command("intercept")
    def intercept(
        listen: Annotated[str, typer.Option("--listen", help="HOST:PORT the clients use as their proxy.")] = (
            "127.0.0.1:8088"
        ),
        store: StoreOpt = DEFAULT_STORE,
        channel: Annotated[str, typer.Option(help="Channel name of the captured exchanges.")] = "intercept",
        kind: Annotated[str, typer.Option(help="fhir, soap, medins, cdc or raw.")] = "raw",
        mode: Annotated[
            str, typer.Option(help="mitmproxy mode: regular (a forward proxy) or reverse:http://HOST:PORT.")
        ] = "regular",
    ) -> None:
        """Run mitmdump with our addon: every HTTP flow through it is captured as an exchange."""
        import shutil
        import signal
        import subprocess
        import sys

        try:
            host, port = parse_hostport(listen, what="--listen")
        except ValueError as exc:
            raise fail_usage(str(exc)) from None
        if kind not in HTTP_KINDS:
            raise fail_usage(f"--kind {kind!r}: expected one of {', '.join(HTTP_KINDS)}")
        mitmdump = shutil.which("mitmdump", path=str(Path(sys.executable).parent)) or shutil.which("mitmdump")
        if mitmdump is None:
            raise fail_usage("mitmdump not found (pip install mitmproxy)")
        from harness.store import StoreError
        from harness.store.location import as_target, make_room

        try:
            target = as_target(store)
        except StoreError as exc:
            raise fail_usage(str(exc)) from None
        make_room(target)
        where = target.resolve() if isinstance(target, Path) else target
        addon = Path(__file__).resolve().parent.parent / "interop" / "addon.py"
        args = [
            mitmdump, "--mode", mode, "--listen-host", host, "--listen-port", str(port), "-s", str(addon),
            "--set", f"harness_store={where}", "--set", f"harness_channel={channel}",
            "--set", f"harness_kind={kind}", "--set", "termlog_verbosity=warn", "--set", "flow_detail=0",
        ]  # fmt: skip
        proc = subprocess.Popen(args)
        typer.echo(f"intercept listening on {listen} (mitmdump pid {proc.pid}) -> {store}")

        def forward(signum, frame) -> None:
            proc.send_signal(signum)

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, forward)
        code = proc.wait()
        if code not in (0, -signal.SIGTERM, -signal.SIGINT):
            raise typer.Exit(2 if code else 0)
