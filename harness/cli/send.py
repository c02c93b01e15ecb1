"""`harness send HOST:PORT PATH...`: send HL7 v2 files over MLLP and report each ACK."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from harness.cli._common import EXIT_CHECKS_FAILED, EXIT_OK, EXIT_USAGE, fail_usage, parse_hostport


@dataclass(slots=True)
class Sent:
    """One message sent: where it came from and what came back."""

    source: str
    index: int
    message_type: str | None
    result: object  # harness.mllp_client.SendResult

    def as_dict(self) -> dict:
        return {"source": self.source, "index": self.index, "message_type": self.message_type,
                **self.result.as_dict()}

    def line(self) -> str:
        r = self.result
        rtt = f"{r.rtt_ms:8.1f} ms" if r.rtt_ms is not None else "       - ms"
        text = f"{r.control_id or '-':<20} {r.ack_code or '-':<3} {rtt}  {self.source}#{self.index}"
        if r.error:
            text += f"  error: {r.error}"
        for late in r.late_acks:
            if late.application:
                kind = "application ACK for"
            else:
                kind = "late ACK for earlier message" if late.earlier else "unexpected ACK for"
            text += f"  ({kind} {late.control_id or '-'}: {late.ack_code or '-'})"
        return text


def send_messages(client, messages: Iterable, emit: Callable[[Sent], None]) -> tuple[int, bool]:
    """Send each FileMessage in order; returns (exit code, connection failed).

    Exit 0 when every message got AA or CA and no application ACK that came after a CA refused one.
    Stops at the first connection failure (nothing after it could be delivered either).
    """
    from harness.hl7v2.meta import extract

    all_accepted = True
    count = 0
    for message in messages:
        meta = extract(message.payload, client.charset)
        result = client.send(message.payload, meta.control_id)
        count += 1
        emit(Sent(message.source, message.index, meta.message_code, result))
        if result.error_kind == "connect":
            return EXIT_USAGE, True
        all_accepted = all_accepted and result.accepted
        # enhanced mode: an application ACK after a CA can still refuse an earlier message
        if any(late.application and late.ack_code != "AA" for late in result.late_acks):
            all_accepted = False
    if not count:
        return EXIT_USAGE, False
    return (EXIT_OK if all_accepted else EXIT_CHECKS_FAILED), False


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
        timeout: Annotated[float, typer.Option(min=0.001, help="Seconds to wait for each ACK.")] = 10.0,
        connect_timeout: Annotated[float, typer.Option(min=0.001, help="Seconds to connect.")] = 5.0,
        tls: Annotated[bool, typer.Option("--tls", help="Use TLS (implied by --ca/--cert).")] = False,
        ca: Annotated[Path | None, typer.Option(help="CA certificate(s) to verify the server (PEM).")] = None,
        cert: Annotated[Path | None, typer.Option(help="Client certificate (PEM).")] = None,
        key: Annotated[Path | None, typer.Option(help="Client private key (PEM), if not in --cert.")] = None,
        server_name: Annotated[str | None, typer.Option(help="TLS server name to verify.")] = None,
        insecure: Annotated[
            bool, typer.Option("--insecure", help="TLS without verifying the server.")
        ] = False,
    ) -> None:
        """Send every message in the files/folders and wait for each ACK (matched by MSA-2).

        Prints control id, ACK code and round-trip time per message. Exit 0 when every message got
        AA or CA, 1 otherwise, 2 on usage or connection errors.
        """
        from harness.hl7v2.files import HL7FileError, iter_messages
        from harness.mllp_client import MLLPClient, TLSOptions

        try:
            host, port = parse_hostport(target, what="target")
        except ValueError as exc:
            raise fail_usage(str(exc)) from None
        try:
            messages = list(iter_messages(paths))
        except HL7FileError as exc:
            raise fail_usage(str(exc)) from None
        if not messages:
            raise fail_usage(f"no HL7 v2 messages found in {', '.join(map(str, paths))}")
        options = None
        if tls or ca or cert or insecure:
            options = TLSOptions(
                ca=str(ca) if ca else None,
                cert=str(cert) if cert else None,
                key=str(key) if key else None,
                server_name=server_name,
                verify=not insecure,
            )
        try:
            client = MLLPClient(
                host, port, timeout=timeout, connect_timeout=connect_timeout, tls=options, charset=charset
            )
        except (OSError, ValueError) as exc:
            raise fail_usage(f"TLS settings: {exc}") from None

        def emit(sent: Sent) -> None:
            if as_json:
                typer.echo(json.dumps(sent.as_dict(), ensure_ascii=False))
            else:
                typer.echo(sent.line())

        with client:
            code, connect_failed = send_messages(client, messages, emit)
        if connect_failed:
            raise fail_usage(f"connection error: cannot reach {client.address}; stopped")
        if not as_json:
            sent_ok = code == EXIT_OK
            typer.secho(
                f"{len(messages)} message(s) sent to {client.address}: "
                + ("all accepted" if sent_ok else "not all accepted (AA/CA)"),
                err=True,
                fg=typer.colors.GREEN if sent_ok else typer.colors.RED,
            )
        raise typer.Exit(code)
