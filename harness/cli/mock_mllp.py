"""`harness mock mllp --listen HOST:PORT`: the MLLP ACK server (see harness/simulators/mllp.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.cli._common import fail_usage, parse_hostport
from harness.cli._tls_options import (
    TLSCertOpt,
    TLSCiphersOpt,
    TLSClientCAOpt,
    TLSKeyOpt,
    TLSMinVersionOpt,
    listener_tls,
)
from harness.terminal_text import visible
from harness.tls import DEFAULT_MIN_VERSION


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    @groups["mock"].command("mllp")
    def mock_mllp(
        listen: Annotated[
            str, typer.Option(metavar="HOST:PORT", help="Where to listen; port 0 picks a free port.")
        ] = "127.0.0.1:2575",
        answer: Annotated[
            str, typer.Option(help="ACK code: AA AE AR (CA CE CR: enhanced mode, per MSH-15/16).")
        ] = "AA",
        delay_ms: Annotated[float, typer.Option(min=0, help="Wait this long before answering.")] = 0.0,
        app_delay_ms: Annotated[
            float,
            typer.Option(min=0, help="Enhanced mode: send the application ACK this long after the CA."),
        ] = 0.0,
        close_after_each: Annotated[
            bool, typer.Option("--close-after-each", help="Close the connection after each answer.")
        ] = False,
        no_answer: Annotated[
            bool, typer.Option("--no-answer", help="Never answer (senders time out).")
        ] = False,
        malformed: Annotated[
            str, typer.Option(help="What a malformed message gets: reject (an AR) or close.")
        ] = "reject",
        nak_every: Annotated[int, typer.Option(min=0, help="Answer every Nth message with --nak-code.")] = 0,
        nak_code: Annotated[str, typer.Option(help="The code --nak-every answers.")] = "AE",
        answer_rule: Annotated[
            list[str] | None,
            typer.Option(
                help="PATH=VALUE:CODE or PATH=re:REGEX:CODE, e.g. 'PID-3.1=re:^9:AE' "
                "(repeatable, first match wins)."
            ),
        ] = None,
        charset: Annotated[
            str | None, typer.Option(help="Charset of incoming messages (default: MSH-18).")
        ] = None,
        max_frame: Annotated[
            int, typer.Option(min=1, help="Largest frame accepted, in bytes; a larger one gets an AR.")
        ] = 16 * 1024 * 1024,
        profile: Annotated[
            Path | None,
            typer.Option(
                help="Validate every message against the standard and this interface profile (and its "
                "waivers): invalid ones get AR or AE with an ERR segment per error, valid ones --answer."
            ),
        ] = None,
        tls_cert: TLSCertOpt = None,
        tls_key: TLSKeyOpt = None,
        tls_client_ca: TLSClientCAOpt = None,
        tls_min_version: TLSMinVersionOpt = DEFAULT_MIN_VERSION,
        tls_ciphers: TLSCiphersOpt = None,
    ) -> None:
        """An MLLP ACK server for tests and demos; one log line per message on stdout.

        With --profile it is the interface's receiver: every message is validated against the HL7 v2
        standard and the profile, and an invalid one is answered AR (not this interface's message: type,
        version, structure, charset) or AE (wrong content) with one ERR segment per error.

        It answers as MSH-15/16 ask: original mode one ACK (--answer AA, AE or AR); enhanced mode the
        accept ACK CA and then the application ACK (--answer or a matching --answer-rule decides it: AE
        gives CA then AE, CE or CR give only that), each when its field asks (AL, ER, SU); NE/NE
        nothing.

        Prints "listening on HOST:PORT" once listening; stops cleanly on SIGINT/SIGTERM.
        """
        try:
            host, port = parse_hostport(listen, what="--listen")
        except ValueError as exc:
            raise fail_usage(str(exc)) from None

        from harness.simulators.mllp import AnswerRule, MockSettings, serve

        try:
            settings = MockSettings(
                answer=answer.strip().upper(),
                delay_ms=delay_ms,
                app_delay_ms=app_delay_ms,
                close_after_each=close_after_each,
                no_answer=no_answer,
                malformed=malformed.strip().lower(),
                nak_every=nak_every,
                nak_code=nak_code.strip().upper(),
                rules=tuple(AnswerRule.parse(r) for r in answer_rule or ()),
                charset=charset,
                max_frame=max_frame,
                profile=str(profile) if profile else None,
            )
            if profile:
                from harness.simulators.mllp import Responder

                Responder(settings)  # load the profile now: a bad one is a usage error, not a crash later
        except ValueError as exc:
            raise fail_usage(str(exc)) from None

        tls = listener_tls(tls_cert, tls_key, tls_client_ca, tls_min_version, tls_ciphers)

        def log(line: str) -> None:
            typer.echo(visible(line))  # lines quote what senders sent

        try:
            code = serve(
                host,
                port,
                settings,
                log=log,
                tls=tls,
            )
        except Exception as exc:  # CannotListenError: say what, exit 2
            raise fail_usage(f"cannot listen on {listen}: {exc}") from None
        raise typer.Exit(code)
