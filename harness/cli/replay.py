"""`harness replay`: re-send captured exchanges (or files), store them as a run, compare, report."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Annotated

import typer

from harness.cli import _tls_options as sending
from harness.cli._audit import audited, masking, preflight
from harness.cli._common import EXIT_CHECKS_FAILED, EXIT_OK, EXIT_USAGE, fail_usage, parse_hostport
from harness.cli._mask_options import MaskKeyOpt, MaskOpt, MaskPolicyOpt, UnmaskedOpt, masker
from harness.cli._options import DEFAULT_STORE, StoreOpt
from harness.cli._store_key import StoreKeyEnvOpt, StoreKeyFileOpt
from harness.codecs import KINDS as HTTP_KINDS
from harness.terminal_text import json_line, visible


def _split(values: list[str] | None) -> list[str]:
    """Repeated options and comma-separated lists alike: `--outcome nak,timeout`."""
    return [part.strip() for value in values or () for part in value.split(",") if part.strip()]


def _echo_json(data: dict) -> None:
    typer.echo(json_line(data))


def emit_report(
    report, *, as_json: bool, html: Path | None, junit: Path | None, json_path: Path | None
) -> int:
    """Write the reports, print the summary; returns the exit code (0 all exact/equivalent, 1 otherwise)."""
    from harness.replay.report import write_reports

    try:
        written = write_reports(
            report,
            html_path=str(html) if html else None,
            junit_path=str(junit) if junit else None,
            json_path=str(json_path) if json_path else None,
        )
    except OSError as exc:
        raise fail_usage(f"cannot write report: {exc}") from None
    summary = report.summary()
    if as_json:
        _echo_json(summary)
    else:
        counts = " ".join(
            f"{k}={summary[k]}" for k in ("exact", "equivalent", "different", "missing", "new_error")
        )
        typer.echo(
            f"run {summary['run_id']} vs {summary['baseline']}: selected={summary['selected']} "
            f"sent={summary['sent']} {counts} recovered={summary['recovered']}"
        )
        for r in report.results:
            c = r.comparison
            if c.failed:
                diffs = "; ".join(
                    f"{d.path} {d.original!r} -> {d.replay!r}" for d in c.differences if not d.ignored
                )
                typer.echo(
                    visible(
                        f"  {c.classification:<10} {r.source} [{r.control_id or '-'}] "
                        f"{c.original_code or '-'} -> {c.replay_code or '-'}"
                        + (f"  {diffs}" if diffs else "")
                        + (f"  ({c.note})" if c.note else "")
                    )
                )
    for path in written:
        typer.secho(f"report written: {path}", err=True)
    return EXIT_OK if report.ok else EXIT_CHECKS_FAILED


def written_reports(*paths: Path | None) -> list[str]:
    """The report files a run wrote, for its audit entry."""
    return [str(p.resolve()) for p in paths if p is not None]


def _dry_run(store, options, rewriter_rules, as_json: bool, chosen=None) -> int:
    """What would go out; masked (`chosen`, a Masker) unless --unmasked: a message that cannot be masked
    is shown as withheld, never as it is."""
    from harness.replay.rewrite import RewriteError, Rewriter, control_id_for, describe
    from harness.replay.run import item_source, ordering_key

    rewriter = Rewriter(rewriter_rules)
    count = 0
    for item in item_source(store, options):
        count += 1
        new_id = control_id_for(0, item.original_id, item.index) if rewriter_rules.new_control_ids else None
        try:
            rw = rewriter.apply(
                item.payload, charset=item.charset, control_id=item.control_id, new_control_id=new_id
            )
            payload, control_id, changes, error = rw.payload, rw.control_id, rw.changes, None
        except RewriteError as exc:
            payload, control_id, changes, error = item.payload, item.control_id, [], str(exc)
        if chosen is not None:
            from harness.mask.masker import MaskError

            kind = item.kind if item.kind == "hl7v2" else f"http:{item.kind}"
            try:
                payload = chosen.content(payload, kind, charset=item.charset)
            except MaskError as exc:
                payload = f"(withheld: could not be masked: {exc})".encode()
        text = payload.decode(item.charset or "utf-8", "replace")
        order_key = ordering_key(item, options.order_key)
        if chosen is not None:  # the order key is a field of the message (PID-3), the changes its values
            shown = chosen.new_pass()
            order_key = shown.value("id", order_key) if order_key else order_key
            changes = [tuple(shown.scrub(str(part)) for part in change) for change in changes]
        if as_json:
            _echo_json(
                {
                    "source": item.source,
                    "original_id": item.original_id,
                    "message_type": item.message_type,
                    "control_id": item.control_id,
                    "send_control_id": control_id,
                    "order_key": order_key,
                    "changes": [list(c) for c in changes],
                    "error": error,
                    "payload": text,
                }
            )
            continue
        head = f"# {item.source}  {item.message_type or '-'}  {item.control_id or '-'}"
        typer.echo(visible(head), nl=False)
        typer.echo(visible(f" -> {control_id}") if control_id != item.control_id else "")
        for line in describe(changes):
            typer.echo(visible(f"#   {line}"))
        if error:
            typer.echo(visible(f"#   NOT SENT: {error}"))
        for segment in text.split("\r"):
            if segment:
                typer.echo(visible(segment))
    note = (
        " (new control ids show as R0-...; a real run puts its run id there)"
        if rewriter_rules.new_control_ids
        else ""
    )
    typer.secho(f"dry run: {count} message(s) would be sent; nothing was sent{note}", err=True)
    return EXIT_OK if count else EXIT_USAGE


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    @app.command("replay")
    def replay(
        store_path: StoreOpt = DEFAULT_STORE,
        to: Annotated[
            str | None,
            typer.Option(
                "--to",
                metavar="HOST:PORT|URL",
                help="Where to send: HOST:PORT (MLLP) or http(s)://HOST:PORT (HTTP); nothing is sent "
                "without it.",
            ),
        ] = None,
        channel: Annotated[list[str] | None, typer.Option(help="Only these channels (repeatable).")] = None,
        since: Annotated[str | None, typer.Option(help="Captured at or after (ISO 8601 or -8h).")] = None,
        until: Annotated[str | None, typer.Option(help="Captured at or before (ISO 8601 or -1h).")] = None,
        message_type: Annotated[
            list[str] | None, typer.Option("--type", help="Message type, ADT^A01 or ADT (repeatable).")
        ] = None,
        control_id: Annotated[
            list[str] | None, typer.Option(help="Only these MSH-10 values (repeatable).")
        ] = None,
        outcome: Annotated[
            list[str] | None,
            typer.Option(
                help="Only these outcomes: ok nak timeout upstream_down malformed fault late_ack error "
                "bad_ack ambiguous_ack no_ack_expected."
            ),
        ] = None,
        where: Annotated[
            list[str] | None,
            typer.Option(help="PATH=VALUE on the request, e.g. PID-3.1=P12345 (re:REGEX too)."),
        ] = None,
        exchange_id: Annotated[
            list[int] | None, typer.Option("--id", help="Only these exchange ids.")
        ] = None,
        capture_run: Annotated[int | None, typer.Option(help="Only exchanges of this capture run.")] = None,
        limit: Annotated[int | None, typer.Option(min=0, help="At most this many messages.")] = None,
        files: Annotated[
            list[Path] | None,
            typer.Option("--files", help="Replay HL7 v2 files/folders instead of the store."),
        ] = None,
        pace: Annotated[
            str | None, typer.Option(help="original (captured gaps), xN (N times faster) or max (default).")
        ] = None,
        rate: Annotated[float | None, typer.Option(help="Messages per second (instead of --pace).")] = None,
        concurrency: Annotated[int, typer.Option(min=1, max=256, help="Messages in flight at once.")] = 1,
        order_key: Annotated[
            str, typer.Option(help="Terse path keeping order per value ('none': no ordering).")
        ] = "PID-3",
        new_control_ids: Annotated[
            bool, typer.Option("--new-control-ids", help="Give each message a new MSH-10 (map kept).")
        ] = False,
        shift_time: Annotated[str | None, typer.Option(help="Shift MSH-7 by DELTA, e.g. +8h, -1d.")] = None,
        time_now: Annotated[
            str | None, typer.Option("--time", help="'now': set MSH-7 to the send time.")
        ] = None,
        set_: Annotated[
            list[str] | None, typer.Option("--set", help="PATH=VALUE set before sending.")
        ] = None,
        retarget_app: Annotated[str | None, typer.Option(help="New MSH-5 (receiving application).")] = None,
        retarget_facility: Annotated[str | None, typer.Option(help="New MSH-6 (receiving facility).")] = None,
        timeout: Annotated[float, typer.Option(min=0.001, help="Seconds to wait for each reply.")] = 10.0,
        ignore: Annotated[
            list[str] | None,
            typer.Option(help="Extra field to ignore when comparing, e.g. MSA-3, ERR*:timestamps."),
        ] = None,
        charset: Annotated[
            str | None, typer.Option(help="Charset of the messages (default: MSH-18).")
        ] = None,
        tls: sending.ClientTLSOpt = False,
        ca: sending.ClientCAOpt = None,
        cert: sending.ClientCertOpt = None,
        key: sending.ClientKeyOpt = None,
        server_name: sending.ServerNameOpt = None,
        insecure: sending.InsecureOpt = False,
        report_html: Annotated[Path | None, typer.Option(help="Write the HTML report here.")] = None,
        report_junit: Annotated[Path | None, typer.Option(help="Write JUnit XML here.")] = None,
        report_json: Annotated[Path | None, typer.Option(help="Write the JSON report here.")] = None,
        dry_run: Annotated[
            bool, typer.Option("--dry-run", help="Print what would be sent; send nothing.")
        ] = False,
        resume: Annotated[
            int | None,
            typer.Option(metavar="RUN_ID", help="Carry on an interrupted run with its own options."),
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
        mask: MaskOpt = False,
        mask_policy: MaskPolicyOpt = None,
        mask_key_file: MaskKeyOpt = None,
        unmasked: UnmaskedOpt = False,
        store_key_file: StoreKeyFileOpt = None,
        store_key_env: StoreKeyEnvOpt = None,
    ) -> None:
        """Re-send selected exchanges to --to, store them as a replay run and compare each reply with the
        original (exact | equivalent | different | missing | new_error).

        Messages, replies and differences in the reports, on the terminal and in --dry-run are masked
        (default policy) unless --unmasked; every run is recorded in the audit log.
        Exit 0 when every exchange is exact or equivalent, 1 otherwise, 2 on usage or connection errors.
        """
        from harness.replay.compare import parse_ignore
        from harness.replay.pacing import parse_pace
        from harness.replay.report import collect
        from harness.replay.rewrite import Rules, parse_assignment, parse_delta
        from harness.replay.run import ReplayOptions, ReplayRun, RunError
        from harness.replay.selection import Selection
        from harness.replay.sender import mllp_factory
        from harness.store import Store, StoreError

        chosen = masker(mask, mask_policy, mask_key_file, [store_path], unmasked=unmasked)
        tls_options = sending.client_tls(tls, ca, cert, key, server_name, insecure)

        def factory_for(opts: ReplayOptions):
            if opts.target.startswith(("http://", "https://")):  # HTTP exchanges: the HTTP sender
                from harness.replay.http_sender import http_factory

                try:  # a new run's target or a resumed one's
                    return http_factory(opts.target, timeout=opts.timeout, tls=tls_options)
                except ValueError as exc:
                    raise fail_usage(str(exc)) from None
            return mllp_factory(opts.target, timeout=opts.timeout, tls=tls_options, charset=opts.charset)

        from harness.store.location import exists

        if not exists(store_path) and (resume is not None or not files):
            raise fail_usage(f"store {store_path}: no such file")
        try:
            store = Store(store_path, check_same_thread=False)
        except (StoreError, OSError, ValueError) as exc:
            raise fail_usage(f"store {store_path}: {exc}") from None

        with store:
            if resume is not None:
                if files or any(
                    (channel, since, until, message_type, control_id, outcome, where, exchange_id)
                ):
                    raise fail_usage(
                        "--resume carries on with the run's own selection; give no selection options"
                    )
                try:
                    run = ReplayRun.resume(store, resume, factory_for, on_progress=None)
                except RunError as exc:
                    raise fail_usage(str(exc)) from None
                if to is not None and to != run.options.target:
                    raise fail_usage(f"run {resume} was sent to {run.options.target}, not {to}")
                options = run.options
                total = _count(store, options)
            else:
                try:
                    if time_now is not None and time_now.strip().lower() != "now":
                        raise ValueError(
                            f"--time {time_now!r}: only 'now' is accepted (use --shift-time DELTA)"
                        )
                    rules = Rules(
                        new_control_ids=new_control_ids,
                        shift_time=parse_delta(shift_time) if shift_time else None,
                        time_now=time_now is not None,
                        retarget_app=retarget_app,
                        retarget_facility=retarget_facility,
                        sets=tuple(parse_assignment(s, option="--set") for s in set_ or ()),
                    )
                    path_values = dict(parse_assignment(w, option="--where") for w in where or ())
                    selection = Selection(
                        channels=_split(channel),
                        since=since,
                        until=until,
                        message_types=_split(message_type),
                        control_ids=_split(control_id),
                        outcomes=_split(outcome),
                        path_values=path_values,
                        ids=list(exchange_id or ()),
                        run_id=capture_run,
                        limit=limit,
                        # what the sender carries: HTTP kinds for an http(s):// target, else hl7v2 (MLLP)
                        kinds=(
                            list(HTTP_KINDS)
                            if (to or "").startswith(("http://", "https://"))
                            else ["hl7v2"]
                        ),
                    )
                    target = to or ""
                    if to is not None and to.startswith(("http://", "https://")):
                        from harness.replay.http_sender import parse_target

                        parse_target(to)
                    elif to is not None:
                        parse_hostport(to, what="--to")
                    options = ReplayOptions(
                        target=target,
                        pace=parse_pace(pace, rate),
                        concurrency=concurrency,
                        order_key=None if order_key.strip().lower() in ("", "none") else order_key.strip(),
                        rules=rules,
                        timeout=timeout,
                        ignore=tuple(parse_ignore(i) for i in ignore or ()),
                        selection=None if files else selection,
                        files=[str(f) for f in files or ()],
                        charset=charset,
                    )
                except ValueError as exc:
                    raise fail_usage(str(exc)) from None
                if options.pace.needs_timestamps and options.files:
                    raise fail_usage(f"--pace {options.pace} needs captured timestamps; files have none")
                if dry_run:
                    preflight(store)
                    try:
                        code = _dry_run(store, options, rules, as_json, chosen)
                    except (StoreError, ValueError, OSError) as exc:
                        raise fail_usage(str(exc)) from None
                    audited(
                        store, "replay", target or "(dry run)",
                        {"dry_run": True, "files": options.files, "exit": code, **masking(chosen)},
                    )  # fmt: skip
                    raise typer.Exit(code)
                if to is None:
                    raise fail_usage("no target: give --to HOST:PORT (or --dry-run to only look)")
                total = _count(store, options)
                if total == 0:
                    raise fail_usage(
                        _other_protocol(store, options, to)
                        or "nothing selected: no message matches the selection; nothing was sent"
                    )
                run = ReplayRun(store, options, factory_for(options))

            reports = (report_html, report_junit, report_json)
            preflight(store)
            code = EXIT_USAGE
            try:
                judge = partial(collect, masker=chosen)
                code = _execute(store, run, options, total, as_json, *reports, judge)
            finally:  # a replay stopped part-way sent messages too: it is recorded either way
                audited(
                    store, "replay", options.target,
                    {"run_id": run.run_id, "resumed": resume is not None, "files": options.files,
                     **run.summary_counts(), "exit": code, "reports": written_reports(*reports),
                     **masking(chosen)},
                )  # fmt: skip
        raise typer.Exit(code)


def _count(store, options) -> int:
    """How many messages the selection holds; a bad filter or file is a usage error here, before any run."""
    from harness.replay.run import item_source
    from harness.replay.selection import Selection
    from harness.store import StoreError

    try:
        if options.files:
            return sum(1 for _ in item_source(store, options))
        return store.count((options.selection or Selection()).to_filter())
    except (StoreError, ValueError, OSError) as exc:
        raise fail_usage(str(exc)) from None


def _other_protocol(store, options, to: str) -> str | None:
    """Why nothing was selected when the selection holds exchanges the --to target cannot carry."""
    from dataclasses import replace

    if options.files or options.selection is None:
        return None
    http_target = to.startswith(("http://", "https://"))
    other = ["hl7v2"] if http_target else list(HTTP_KINDS)
    n = store.count(replace(options.selection, kinds=other).to_filter())
    if not n:
        return None
    if http_target:
        return (
            f"nothing to send to {to}: the selection holds {n} HL7 v2 (MLLP) exchange(s) and no HTTP one; "
            "give --to HOST:PORT to replay them over MLLP"
        )
    return (
        f"nothing to send to {to} over MLLP: the selection holds {n} HTTP exchange(s) and no HL7 v2 one; "
        "give --to http://HOST:PORT (or https://) to replay them over HTTP"
    )


def _execute(store, run, options, total, as_json, report_html, report_junit, report_json, collect) -> int:
    import signal
    import threading

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from harness.store import StoreError

    console = Console(stderr=True)
    bar = Progress(
        TextColumn(f"replay run {run.run_id} → {options.target}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[codes]}"),
        TimeElapsedColumn(),
        console=console,
        transient=not console.is_terminal,
        disable=not console.is_terminal,
    )
    task = bar.add_task("replay", total=total, codes="")
    lock = threading.Lock()

    def on_progress(p) -> None:
        with lock:
            done = p.skipped + p.sent + p.errors
            codes = " ".join(f"{k}={v}" for k, v in sorted(p.codes.items()))
            bar.update(task, completed=done, codes=codes + (f" no-reply={p.no_reply}" if p.no_reply else ""))

    run.on_progress = on_progress
    previous = signal.getsignal(signal.SIGINT)

    def interrupt(signum, frame) -> None:
        run.stop.set()
        typer.secho("\ninterrupted: finishing messages in flight", err=True)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, interrupt)
    try:
        with bar:
            try:
                progress = run.execute()
            except (StoreError, ValueError, OSError) as exc:
                raise fail_usage(f"replay run {run.run_id}: {exc}") from None
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, previous)
    if progress.unreachable:
        typer.secho(
            f"error: {progress.unreachable}; run {run.run_id} stopped (carry on with --resume {run.run_id})",
            err=True,
            fg=typer.colors.RED,
        )
        if as_json:
            _echo_json({"run_id": run.run_id, "error": progress.unreachable, **run.summary_counts()})
        return EXIT_USAGE
    if run.stop.is_set():
        typer.secho(f"run {run.run_id} interrupted; carry on with --resume {run.run_id}", err=True)
    try:
        report = collect(store, "capture", run.run_id, options.ignore)
    except (StoreError, ValueError) as exc:
        raise fail_usage(str(exc)) from None
    code = emit_report(report, as_json=as_json, html=report_html, junit=report_junit, json_path=report_json)
    if run.stop.is_set() and code == EXIT_OK:
        return EXIT_CHECKS_FAILED
    return code
