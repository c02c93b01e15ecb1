"""`harness inspect`: the interface inspection (接口巡检) of a capture store, with service levels."""

from __future__ import annotations

import sys
from datetime import UTC
from pathlib import Path
from typing import Annotated

import typer

from harness.cli._common import EXIT_CHECKS_FAILED, fail_usage
from harness.cli._options import DEFAULT_STORE, StoreOpt
from harness.cli._store_key import StoreKeyEnvOpt, StoreKeyFileOpt


def parse_offset(text: str | None, option: str):
    """A zone from '+08:00', 'UTC' or a tz database name ('Asia/Shanghai'); None for the machine's."""
    if text is None:
        return None
    from datetime import timedelta, timezone

    value = text.strip()
    if value.upper() in ("UTC", "Z"):
        return UTC
    if value[:1] in "+-" and len(value) in (5, 6):
        digits = value[1:].replace(":", "")
        if digits.isdigit() and len(digits) == 4 and int(digits[:2]) <= 14 and int(digits[2:]) < 60:
            sign = -1 if value[0] == "-" else 1
            return timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo(value)
    except (KeyError, ValueError, OSError):
        raise fail_usage(
            f"{option} {text!r}: expected an offset such as +08:00, UTC, or a zone name such as Asia/Shanghai"
        ) from None


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    @app.command("inspect")
    def inspect(
        store: StoreOpt = DEFAULT_STORE,
        since: Annotated[
            str,
            typer.Option(
                help="From this time: ISO 8601 (local, or with Z/+08:00) or relative (7d, 30m, -2h)."
            ),
        ] = "7d",
        until: Annotated[str, typer.Option(help="Up to this time (same forms; default now).")] = "now",
        channel: Annotated[
            list[str] | None, typer.Option("--channel", "-c", help="Only this channel (repeatable).")
        ] = None,
        sla_file: Annotated[
            Path | None, typer.Option("--sla", help="Service levels (YAML): exit 1 when one is breached.")
        ] = None,
        compare_previous: Annotated[
            bool,
            typer.Option(
                "--compare-previous",
                help="Also inspect the period of the same length before, and show the trend.",
            ),
        ] = False,
        config: Annotated[
            Path | None,
            typer.Option(
                "--config", help="The proxy config: names each channel's primary and backup upstreams."
            ),
        ] = None,
        html: Annotated[Path | None, typer.Option("--html", help="Write the HTML report here.")] = None,
        report_json: Annotated[
            Path | None, typer.Option("--report-json", help="Write the JSON report here.")
        ] = None,
        summary: Annotated[
            Path | None, typer.Option("--summary", help="Write the one-page text summary here.")
        ] = None,
        as_json: Annotated[
            bool, typer.Option("--json", help="Print the JSON report instead of the summary.")
        ] = False,
        business_hours: Annotated[
            str | None,
            typer.Option(
                help="When silence counts, local time (default 08:00-18:00; overrides the SLA file's)."
            ),
        ] = None,
        business_days: Annotated[
            str | None, typer.Option(help="Days business hours apply: mon-fri, mon,wed or all (default all).")
        ] = None,
        silence_minutes: Annotated[
            float | None,
            typer.Option(min=0.1, help="No exchange this long in business hours is a silence (default 30)."),
        ] = None,
        message_tz: Annotated[
            str | None,
            typer.Option(
                help="Zone of message times without an offset (MSH-7, "
                "inf_time): +08:00, Asia/Shanghai (default: this machine's)."
            ),
        ] = None,
        include_replays: Annotated[
            bool,
            typer.Option(
                "--include-replays", help="Count replayed exchanges too (default: live traffic only)."
            ),
        ] = False,
        top: Annotated[int, typer.Option(min=1, max=100, help="Failures listed per channel.")] = 10,
        store_key_file: StoreKeyFileOpt = None,
        store_key_env: StoreKeyEnvOpt = None,
    ) -> None:
        """Per channel and message type: volume per hour, success rate, latency p50/p95/p99, failures with an
        example each, silences in business hours, sync delay, which upstream answered, and the trend.

        Exit 0: no SLA breached (or no --sla); 1: a service level breached, each named; 2: bad input.
        """
        from harness.inspect.report import render_html, render_json, render_text
        from harness.inspect.run import InspectOptions, inspect_store
        from harness.inspect.sla import SlaError, load_sla, no_sla
        from harness.store import Store, StoreError, is_url, parse_time

        now = __import__("time").time()
        try:
            lo = parse_time(since, now=now)
            hi = parse_time(until, now=now)
        except ValueError as exc:
            raise fail_usage(f"--since/--until: {exc}") from None
        if hi <= lo:
            raise fail_usage(f"--until ({until}) must be after --since ({since})")
        overrides = {
            "business_hours": business_hours,
            "business_days": business_days,
            "silence_minutes": silence_minutes,
        }
        try:
            if sla_file is not None:
                sla = load_sla(sla_file, **overrides)
            else:
                sla = no_sla(**{k: v for k, v in overrides.items() if v is not None})
        except (SlaError, ValueError) as exc:
            raise fail_usage(f"--sla {sla_file}: {exc}" if sla_file else str(exc)) from None
        upstreams: dict[str, list[str]] = {}
        if config is not None:
            from harness.proxy.config import ConfigError, load_config

            try:
                proxy = load_config(config)
            except ConfigError as exc:
                raise fail_usage(f"--config: {exc}") from None
            upstreams = {name: [str(a) for a in ch.upstreams] for name, ch in proxy.channels.items()}
        options = InspectOptions(
            since=lo,
            until=hi,
            channels=channel or None,
            live_only=not include_replays,
            sla=sla,
            upstreams=upstreams,
            compare_previous=compare_previous,
            message_tz=parse_offset(message_tz, "--message-tz"),
            top=top,
        )
        if not is_url(store) and not Path(store).exists():
            raise fail_usage(f"--store {store}: no such file")
        try:
            with Store(store, create=False) as db:
                result = inspect_store(db, options)
        except StoreError as exc:
            raise fail_usage(str(exc)) from None
        text = render_text(result)
        try:
            for path, content in ((html, render_html), (report_json, render_json), (summary, None)):
                if path is not None:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(content(result) if content else text, encoding="utf-8")
        except OSError as exc:
            raise fail_usage(f"cannot write the report: {exc}") from None
        sys.stdout.write(render_json(result) if as_json else text)
        if not as_json:
            for path, what in ((html, "HTML"), (report_json, "JSON"), (summary, "summary")):
                if path is not None:
                    typer.echo(f"{what} report: {path}")
        if result["sla"]["breaches"]:
            raise typer.Exit(EXIT_CHECKS_FAILED)
