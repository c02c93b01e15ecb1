"""`harness send HOST:PORT PATH...`: send HL7 v2 files over MLLP and report each ACK."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from harness.cli import _tls_options as sending
from harness.cli._common import EXIT_OK, fail_usage, parse_hostport
from harness.terminal_text import json_line, visible


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    @app.command("send")
    def send(
        target: Annotated[str, typer.Argument(metavar="HOST:PORT", help="The MLLP listener to send to.")],
        paths: Annotated[list[Path], typer.Argument(metavar="PATH...", help="HL7 v2 files or folders.")],
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object per message.")] = False,
        charset: Annotated[
            str | None,
            typer.Option(help="Charset for reading control ids and ACKs (default: MSH-18, else UTF-8)."),
        ] = None,
        timeout: Annotated[
            float, typer.Option(min=0.001, help="Seconds to wait for each message's first reply.")
        ] = 10.0,
        app_timeout: Annotated[
            float | None,
            typer.Option(min=0.001, help="Enhanced mode: seconds to wait for the application ACK after "
                         "the CA (default: --timeout)."),
        ] = None,
        conditional_wait: Annotated[
            float,
            typer.Option(min=0, help="Seconds to wait for a reply owed only on error or success "
                         "(MSH-15/16 ER, SU) before moving on."),
        ] = 2.0,
        connect_timeout: Annotated[float, typer.Option(min=0.001, help="Seconds to connect.")] = 5.0,
        tls: sending.ClientTLSOpt = False,
        ca: sending.ClientCAOpt = None,
        cert: sending.ClientCertOpt = None,
        key: sending.ClientKeyOpt = None,
        server_name: sending.ServerNameOpt = None,
        insecure: sending.InsecureOpt = False,
        skip_unreadable: Annotated[
            bool,
            typer.Option(
                "--skip-unreadable",
                help="Send the readable files and report the others (exit 1), instead of sending nothing.",
            ),
        ] = False,
    ) -> None:
        """Send every message in the files/folders and wait for what each asks back (MSH-15/16).

        Original mode: one ACK. Enhanced mode: the accept ACK, then the application ACK when MSH-16 asks
        for it; NE/NE: nothing. Replies are matched by MSA-2. One line per message: control id, type,
        codes (CA+AE), round trip, source and, for a failure, what the reply says; then a count line.
        Exit 0 when every message was accepted (or asked for no ACK), 1 otherwise, 2 on usage or
        connection errors.
        """
        from harness.hl7v2.files import HL7FileError, iter_messages
        from harness.mllp_client import MLLPClient
        from harness.send import Sent, send_messages

        try:
            host, port = parse_hostport(target, what="target")
        except ValueError as exc:
            raise fail_usage(str(exc)) from None
        unreadable: list[HL7FileError] = []
        try:
            messages = list(iter_messages(paths, on_error=unreadable.append if skip_unreadable else None))
        except HL7FileError as exc:
            raise fail_usage(f"{exc} (nothing was sent; --skip-unreadable sends the other files)") from None
        for problem in unreadable:
            typer.echo(f"skipped, unreadable: {visible(str(problem))}", err=True)
        if not messages:
            raise fail_usage(f"no HL7 v2 messages found in {', '.join(map(str, paths))}")
        options = sending.client_tls(tls, ca, cert, key, server_name, insecure)
        try:
            client = MLLPClient(
                host, port, timeout=timeout, connect_timeout=connect_timeout, tls=options, charset=charset,
                app_timeout=app_timeout, conditional_wait=conditional_wait,
            )
        except (OSError, ValueError) as exc:
            raise fail_usage(f"TLS settings: {exc}") from None

        def emit(sent: Sent) -> None:
            if as_json:
                typer.echo(json_line(sent.as_dict()))
            else:
                typer.echo(visible(sent.line()))  # the ACK's text and control id come from the peer

        with client:
            summary = send_messages(client, messages, emit)
        summary.skipped = len(unreadable)
        if as_json:
            typer.echo(json.dumps(summary.as_dict(), ensure_ascii=False))
        if summary.connect_failed:
            raise fail_usage(f"connection error: cannot reach {client.address}; stopped")
        if not as_json:
            good = summary.exit_code == EXIT_OK
            typer.secho(summary.line(), err=True, fg=typer.colors.GREEN if good else typer.colors.RED)
        raise typer.Exit(summary.exit_code)
