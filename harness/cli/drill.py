"""`harness drill switchover`: the primary/backup switchover drill (主备切换演练) through the proxy."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from harness.cli._common import EXIT_CHECKS_FAILED, fail_usage, parse_hostport

MAX_MESSAGES = 1_000_000


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    drill_app = typer.Typer(
        help="Drills that prove interfaces stay available (主备切换演练).", no_args_is_help=True
    )
    app.add_typer(drill_app, name="drill")
    groups["drill"] = drill_app

    @drill_app.command("switchover")
    def switchover(
        config: Annotated[
            Path,
            typer.Option(
                "--config", help="The proxy config (the channel's listen address, upstream list and store)."
            ),
        ],
        channel: Annotated[str, typer.Option("--channel", "-c", help="The MLLP channel to drill.")],
        rate: Annotated[float, typer.Option(min=0.1, max=10000, help="Messages a second.")] = 10.0,
        duration: Annotated[float, typer.Option(min=1, max=86400, help="Seconds of traffic.")] = 60.0,
        switch_cmd: Annotated[
            str | None,
            typer.Option(
                "--switch-cmd",
                help="Shell command that switches the "
                "engine (e.g. stops the primary); without it, switch by "
                "hand when told.",
            ),
        ] = None,
        switch_at: Annotated[
            float | None,
            typer.Option(
                "--switch-at",
                min=0,
                help="Seconds after the start to switch (default: a third of --duration).",
            ),
        ] = None,
        received: Annotated[
            list[Path] | None,
            typer.Option(
                "--received",
                help="An engine's log of what it "
                "received, primary first (repeatable): the drill "
                "finds its control ids there.",
            ),
        ] = None,
        start_proxy: Annotated[
            bool,
            typer.Option(
                "--start-proxy",
                help="Run `harness proxy --config` for the drill (default: use the proxy already running).",
            ),
        ] = False,
        target: Annotated[
            str | None,
            typer.Option(metavar="HOST:PORT", help="Send here instead of the channel's listen address."),
        ] = None,
        patients: Annotated[
            int, typer.Option(min=1, max=1000, help="Drill patients (messages in order each).")
        ] = 10,
        message_type: Annotated[str, typer.Option(help="TYPE^TRIGGER of the drill messages.")] = "ADT^A08",
        connections: Annotated[int, typer.Option(min=1, max=64, help="Sender connections.")] = 1,
        timeout: Annotated[float, typer.Option(min=0.1, help="Seconds to wait for each ACK.")] = 5.0,
        retry_interval: Annotated[
            float, typer.Option(min=0.05, help="Seconds between tries of a failed message.")
        ] = 0.5,
        drain: Annotated[
            float, typer.Option(min=0.0, help="Seconds to keep retrying after --duration.")
        ] = 30.0,
        max_outage: Annotated[
            float | None, typer.Option(min=0.0, help="Fail when the outage window is longer (seconds).")
        ] = None,
        max_duplicates: Annotated[
            int | None, typer.Option(min=0, help="Fail when more messages were delivered twice.")
        ] = None,
        operator: Annotated[
            str | None, typer.Option(help="Drill lead, printed in the sign-off block.")
        ] = None,
        witness: Annotated[str | None, typer.Option(help="Witness, printed in the sign-off block.")] = None,
        html: Annotated[Path | None, typer.Option("--html", help="Write the HTML report here.")] = None,
        report_json: Annotated[
            Path | None, typer.Option("--report-json", help="Write the JSON report here.")
        ] = None,
        as_json: Annotated[
            bool, typer.Option("--json", help="Print the JSON report instead of the summary.")
        ] = False,
    ) -> None:
        """Send unique, traceable messages through the proxy while the engine switches from primary to backup;
        measure the outage window, messages lost, duplicated and reordered per patient, and the recovery.

        Exit 0: nothing lost, recovered (within --max-outage); 1: the drill failed, each reason named; 2: bad
        input or the proxy unreachable.
        """
        from harness.drill.analysis import DrillLimits
        from harness.drill.report import render_html, render_json, render_text
        from harness.drill.run import DrillError, DrillSettings, run_drill
        from harness.drill.traffic import Traffic

        try:
            Traffic("DR", message_type=message_type)
            address = parse_hostport(target, what="--target") if target else None
        except ValueError as exc:
            raise fail_usage(str(exc)) from None
        if rate * duration > MAX_MESSAGES:
            raise fail_usage(f"--rate × --duration: {rate * duration:,.0f} messages; a drill sends at most "
                             f"{MAX_MESSAGES:,} (each is tracked until the report)")  # fmt: skip
        if switch_at is not None and switch_at >= duration:
            raise fail_usage(f"--switch-at {switch_at:g}: must be within --duration ({duration:g} s)")
        for path in received or []:
            if not path.is_file():
                raise fail_usage(f"--received {path}: no such file")
        settings = DrillSettings(
            config_path=config,
            channel=channel,
            rate=rate,
            duration_s=duration,
            switch_cmd=switch_cmd,
            switch_at_s=switch_at,
            patients=patients,
            message_type=message_type,
            connections=connections,
            timeout_s=timeout,
            retry_interval_s=retry_interval,
            drain_s=drain,
            received=list(received or []),
            start_proxy=start_proxy,
            target=address,
            limits=DrillLimits(max_outage_s=max_outage, max_duplicates=max_duplicates),
            operator=operator,
            witness=witness,
        )

        def say(line: str) -> None:
            typer.echo(line, err=as_json)

        try:
            report = run_drill(settings, say)
        except DrillError as exc:
            raise fail_usage(str(exc)) from None
        if report["acknowledged"] == 0 and report["delivered"] == 0 and report["failed_attempt_count"]:
            first = report["failed_attempts"][0]
            typer.secho(
                f"nothing got through: {first['result']} {first['text'] or ''} (is the proxy running at "
                f"{report['run']['target']}?)",
                err=True,
                fg=typer.colors.RED,
            )
        try:
            for path, render in ((html, render_html), (report_json, render_json)):
                if path is not None:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(render(report), encoding="utf-8")
        except OSError as exc:
            raise fail_usage(f"cannot write the report: {exc}") from None
        sys.stdout.write(render_json(report) if as_json else render_text(report))
        if not as_json:
            for path, what in ((html, "HTML"), (report_json, "JSON")):
                if path is not None:
                    typer.echo(f"{what} report: {path}")
        if report["verdict"] != "PASS":
            raise typer.Exit(EXIT_CHECKS_FAILED)
