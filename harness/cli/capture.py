"""`harness capture list|show|export|summary`: read what the proxy captured.

The commands only move rows from the store to the terminal or to files; selection lives in
`harness.store.ExchangeFilter` and counting in `harness.exchange.summarize`, shared with replay.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from harness.cli._audit import audited, exchanges, masking, preflight
from harness.cli._common import fail_usage
from harness.cli._mask_options import MaskKeyOpt, MaskOpt, MaskPolicyOpt, UnmaskedOpt, masked, masker
from harness.cli._options import DEFAULT_STORE, StoreOpt
from harness.cli._store_filter import (
    RUNS_HELP,
    check_times,
    parse_runs,
    scope_text,
    split_outcomes,
    store_errors,
    traffic_filter,
)
from harness.cli._store_key import StoreKeyEnvOpt, StoreKeyFileOpt
from harness.private_files import OutputExists, open_private, private_dir, write_private
from harness.terminal_text import json_line, visible

ChannelOpt = Annotated[list[str] | None, typer.Option("--channel", "-c", help="Channel name (repeatable).")]
SinceOpt = Annotated[
    str | None,
    typer.Option(
        "--since", help="From this time: ISO 8601 (local, or with Z/+08:00), or relative: -2h, -30m."
    ),
]
UntilOpt = Annotated[str | None, typer.Option("--until", help="Up to this time (same forms as --since).")]
TypeOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--type", "-t", help="Message type: ADT^A01 exactly, or ADT for every trigger (repeatable)."
    ),
]
ControlIdOpt = Annotated[
    list[str] | None, typer.Option("--control-id", help="MSH-10 control id (repeatable).")
]
OutcomeOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--outcome",
        "-o",
        help="ok, nak, timeout, upstream_down, malformed, fault, late_ack, error, bad_ack, ambiguous_ack, "
        "no_ack_expected, pending (repeatable or a,b).",
    ),
]
KindOpt = Annotated[
    list[str] | None, typer.Option("--kind", help="hl7v2, fhir, soap, medins, cdc, raw (repeatable).")
]
RunOpt = Annotated[int | None, typer.Option("--run", help="Only exchanges of this replay run.")]
RunsOpt = Annotated[str | None, typer.Option("--runs", metavar="all|N[,N]", help=RUNS_HELP)]
ForceOpt = Annotated[bool, typer.Option("--force", help="Overwrite files that already exist.")]
WhereOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--where",
        "-w",
        metavar="PATH=VALUE",
        help="Terse path value in the request: PID-3.1=12345, or 'PID-5.1=re:^ZHANG' for a regex "
        "(repeatable; all must hold).",
    ),
]
LimitOpt = Annotated[int | None, typer.Option("--limit", "-n", min=0, help="At most this many exchanges.")]
NewestOpt = Annotated[
    bool, typer.Option("--newest-first", "-r", help="Newest first (with --limit: the last N).")
]

_TABLE_CHUNK = 200
_SHORT_HEADERS = {"time (local)": "time", "channel": "chan", "control id": "ctl id", "latency ms": "ms"}


def _filter(
    channel, since, until, types, control_ids, outcomes, kinds, run, where, limit, newest: bool = False,
    runs=None,
):  # fmt: skip
    from harness.store import ExchangeFilter

    path_values: dict[str, str] = {}
    for item in where or []:
        path, sep, value = item.partition("=")
        if not sep or not path.strip():
            raise fail_usage(f"--where {item!r}: expected PATH=VALUE, e.g. PID-3.1=12345")
        path_values[path.strip()] = value
    check_times(since, until)
    outcome_names = split_outcomes(outcomes)
    from harness.exchange import OUTCOMES

    unknown = [o for o in outcome_names if o not in OUTCOMES]
    if unknown:
        raise fail_usage(f"--outcome {', '.join(unknown)}: expected one of {', '.join(OUTCOMES)}")
    return ExchangeFilter(
        channel=channel or None,
        since=since,
        until=until,
        message_type=types or None,
        control_ids=control_ids or None,
        outcomes=outcome_names or None,
        kind=kinds or None,
        run_id=run,
        path_values=path_values or None,
        limit=limit,
        order="-id" if newest else "id",
        **traffic_filter(runs, run),
    )


def _replay_run_of(db, ex) -> int | None:
    """The replay run `ex` belongs to, or None for live traffic."""
    if ex.run_id is None:
        return None
    run = db.get_run(ex.run_id)
    return ex.run_id if run is not None and run.kind == "replay" else None


def _open(path: Path):
    from harness.store import Store

    with store_errors(path):
        return Store(path, create=False)


def _query(store, flt, *, bodies: bool) -> Iterator:
    """The rows, streamed; a store that fails part-way (a corrupt page) ends the command with exit 2."""
    with store_errors(store.path):
        rows = store.query(flt, bodies=bodies)

    def guarded() -> Iterator:
        with store_errors(store.path):
            yield from rows

    return guarded()


def _fault_text(fault: dict | None) -> str:
    if not fault:
        return ""
    action = fault.get("action")
    kind = action.get("type") if isinstance(action, dict) else action
    rule = fault.get("id")
    return f"{kind or '?'}" + (f" ({rule})" if rule is not None else "")


def _type_text(ex) -> str:
    if ex.protocol == "http":
        head = f"{ex.method or ''} {ex.status if ex.status is not None else ''}".strip()
        return f"{ex.message_type} {head}".strip() if ex.message_type else head
    return ex.message_type or ""


def _decode(data: bytes, charset: str | None) -> tuple[str, str | None]:
    """Text for display and a warning when the recorded charset did not decode every byte."""
    codec = charset or "utf-8"
    try:
        return data.decode(codec), None
    except LookupError:
        return data.decode("utf-8", errors="replace"), f"unknown charset {codec!r}; shown as UTF-8"
    except UnicodeDecodeError as exc:
        return (
            data.decode(codec, errors="replace"),
            f"byte(s) {data[exc.start : exc.end].hex(' ')} at offset {exc.start} are not {codec}; "
            "shown as U+FFFD",
        )


def _body_lines(ex, data: bytes) -> tuple[list[str], str | None]:
    text, warning = _decode(data, ex.charset)
    if ex.kind == "hl7v2" or ex.protocol == "mllp":
        lines = [line for line in re.split(r"\r\n|\r|\n", text) if line != ""]
    else:
        lines = text.splitlines() or [text]
    return lines, warning


def _safe_name(text: str | None) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", text or "")[:64].strip("._")
    return cleaned or "no-control-id"


def _batch_header(first: bytes) -> bytes:
    """FHS and BHS segments using the first message's field separator and encoding characters."""
    field = first[3:4] if first.startswith(b"MSH") and len(first) > 3 else b"|"
    enc_end = first.find(field, 4)
    encoding = first[4:enc_end] if enc_end > 4 else b"^~\\&"
    stamp = datetime.now().strftime("%Y%m%d%H%M%S").encode()
    return b"".join(
        seg + field + encoding + field + b"harness" + field * 5 + stamp + b"\r" for seg in (b"FHS", b"BHS")
    )


def _batch_trailer(count: int, field: bytes = b"|") -> bytes:
    return b"BTS" + field + str(count).encode() + b"\rFTS" + field + b"1\r"


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    from harness.cli._groups import group

    capture_app = group(app, groups, "capture")

    @capture_app.command("list")
    def list_(
        store: StoreOpt = DEFAULT_STORE,
        channel: ChannelOpt = None,
        since: SinceOpt = None,
        until: UntilOpt = None,
        type_: TypeOpt = None,
        control_id: ControlIdOpt = None,
        outcome: OutcomeOpt = None,
        kind: KindOpt = None,
        run: RunOpt = None,
        runs_option: RunsOpt = None,
        where: WhereOpt = None,
        limit: LimitOpt = None,
        newest_first: NewestOpt = False,
        as_json: Annotated[
            bool, typer.Option("--json", help="One JSON object per exchange (JSON lines).")
        ] = False,
        store_key_file: StoreKeyFileOpt = None,
        store_key_env: StoreKeyEnvOpt = None,
    ) -> None:
        """List exchanges, oldest first: a table, or JSON lines with --json.

        Examples: `harness capture list --outcome nak,timeout --since -2h`;
        `harness capture list --type ADT^A01 --where PID-3.1=12345 --json`.
        """
        runs = parse_runs(runs_option)
        flt = _filter(
            channel, since, until, type_, control_id, outcome, kind, run, where, limit, newest_first, runs
        )
        with _open(store) as db:
            rows = _query(db, flt, bodies=False)
            if as_json:
                out = sys.stdout
                for ex in rows:
                    out.write(json_line(ex.to_json()) + "\n")
                out.flush()
                typer.echo(f"({scope_text(runs, run)})", err=True)
                return
            _print_table(rows, scope_text(runs, run))

    def _print_table(rows, scope: str) -> None:
        from rich.cells import cell_len
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        from harness.table_fit import Column, cut, fit

        # Fixed column widths keep the chunks printed one after another aligned; output that is not a
        # terminal is never squeezed to 80 columns (a pipe into less or a file wants every column).
        console = Console() if sys.stdout.isatty() else Console(width=200)
        columns = [
            Column("id", 7, 6),
            Column("time (local)", 23, 14),  # narrower: without the year, then without milliseconds
            Column("channel", 12, 5),
            Column("type", 13, 7),
            Column("control id", 20, 7),
            Column("ack", 5, 5),
            Column("outcome", 13, 8),
            Column("latency ms", 10, 6),
            Column("fault", 20, 5),
        ]
        # A narrow terminal shrinks the columns that can give, cutting long cells (and saying so); none
        # is dropped. Narrower than every minimum, the cells wrap instead.
        widths = dict(zip((c.name for c in columns), fit(columns, console.width), strict=True))
        wraps = sum(widths.values()) + 2 * (len(columns) - 1) > console.width
        names = [c.name for c in columns]
        time_format = "%Y-%m-%d %H:%M:%S.%f" if widths["time (local)"] >= 23 else "%m-%d %H:%M:%S.%f"
        cuts = 0

        def new_table(header: bool) -> Table:
            table = Table(show_header=header, box=None, pad_edge=False, show_edge=False)
            for name in names:
                label = name if cell_len(name) <= widths[name] else _SHORT_HEADERS.get(name, name)
                table.add_column(
                    cut(label, widths[name])[0],
                    width=widths[name],
                    no_wrap=not wraps,
                    overflow="fold" if wraps else "ellipsis",
                    justify="right" if name in ("id", "latency ms") else "left",
                )
            return table

        def cell(name: str, text: str, style: str = "") -> Text:
            nonlocal cuts
            if not wraps:
                text, was_cut = cut(text, widths[name])
                cuts += was_cut
            return Text(text, style=style)

        styles = {"ok": "green", "nak": "yellow", "late_ack": "yellow", "fault": "magenta"}
        table = new_table(True)
        shown = 0
        for ex in rows:
            latency = f"{ex.latency_ms:.1f}" if ex.latency_ms is not None else "-"
            style = styles.get(ex.outcome, "red")
            started = datetime.fromtimestamp(ex.started_at).strftime(time_format)[:-3]
            cells = {  # captured text is made visible and inert: no control characters; Text is no markup
                "id": str(ex.id),
                "time (local)": started if len(started) <= widths["time (local)"] else started[:-4],
                "channel": visible(ex.channel),
                "type": visible(_type_text(ex)),
                "control id": visible(ex.control_id or ""),
                "ack": visible("+".join(c for c in (ex.accept_ack_code, ex.ack_code) if c) or ""),
                "outcome": visible(ex.outcome),
                "latency ms": latency,
                "fault": visible(_fault_text(ex.fault)),
            }
            table.add_row(*(cell(n, cells[n], style if n == "outcome" else "") for n in names))
            shown += 1
            if shown % _TABLE_CHUNK == 0:  # print as we go: a 100k-row store never sits in one table
                console.print(table)
                table = new_table(False)
        if table.row_count or not shown:
            console.print(table)
        console.print(f"[dim]{shown} exchange{'s' if shown != 1 else ''} ({scope})[/]", highlight=False)
        squeezed = any(widths[c.name] < c.width for c in columns)
        if cuts and squeezed:
            console.print(
                f"[dim]{cuts} cell(s) cut (…) to fit {console.width} columns; a wider terminal or --json "
                "shows them whole[/]",
                highlight=False,
            )
        elif cuts:
            note = f"{cuts} cell(s) longer than their column cut (…); --json shows them whole"
            console.print(f"[dim]{note}[/]", highlight=False)
        elif wraps:
            console.print(f"[dim]cells wrapped to fit {console.width} columns[/]", highlight=False)

    @capture_app.command("show")
    def show(
        exchange_id: Annotated[int, typer.Argument(metavar="ID", help="Exchange id (from `capture list`).")],
        store: StoreOpt = DEFAULT_STORE,
        raw: Annotated[
            bool, typer.Option("--raw", help="Write the request's bytes exactly as captured to stdout.")
        ] = False,
        response: Annotated[
            bool, typer.Option("--response", help="With --raw: write the response's bytes instead.")
        ] = False,
        as_json: Annotated[bool, typer.Option("--json", help="One JSON object, bodies as text.")] = False,
        runs_option: RunsOpt = None,
        mask: MaskOpt = False,
        mask_policy: MaskPolicyOpt = None,
        mask_key_file: MaskKeyOpt = None,
        unmasked: UnmaskedOpt = False,
        store_key_file: StoreKeyFileOpt = None,
        store_key_env: StoreKeyEnvOpt = None,
    ) -> None:
        """Print one exchange in full: its fields, then request and response, one segment a line.

        Patient data is masked (default policy) unless --unmasked; every show is in the audit log.

        An enhanced-mode exchange shows the accept ACK (accept_response) before the application ACK.
        An exchange of a replay run is shown when --runs includes that run (or is 'all').
        """
        runs = parse_runs(runs_option)
        ex = replay_run = None
        with _open(store) as db:
            if 0 < exchange_id <= 2**63 - 1:  # SQLite's range; any other id names nothing
                with store_errors(store):
                    ex = db.get(exchange_id)
                    replay_run = _replay_run_of(db, ex) if ex is not None else None
        if ex is None:
            raise fail_usage(f"no exchange {exchange_id} in {store}")
        if replay_run is not None and runs != "all" and replay_run not in (runs or ()):
            raise fail_usage(
                f"exchange {exchange_id} belongs to replay run {replay_run}, not to live traffic; "
                f"add --runs {replay_run} (or --runs all) to show it"
            )
        chosen = masker(mask, mask_policy, mask_key_file, [store], unmasked=unmasked)
        preflight(store)
        (ex,) = masked([ex], chosen)
        view_kind = "raw" if raw else "json" if as_json else "text"
        audited(
            store,
            "capture.show",
            str(store),
            {**exchanges([exchange_id]), "view": view_kind, **masking(chosen)},
        )
        if raw:
            data = ex.response if response else ex.request
            if data is None:
                raise fail_usage(f"exchange {exchange_id} has no response")
            if sys.stdout.isatty():
                raise fail_usage(
                    "--raw writes the captured bytes exactly, control characters included, and stdout is a "
                    "terminal: redirect it to a file or a pipe (e.g. | xxd)"
                )
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
            return
        bodies = [("request", ex.request)]
        if ex.accept_response is not None:
            bodies.append(("accept_response", ex.accept_response))
        bodies.append(("response", ex.response))
        if as_json:
            view = ex.to_json()
            for name, data in bodies:
                text, warning = _decode(data, ex.charset) if data is not None else (None, None)
                view[name] = text
                if warning:
                    view[f"{name}_warning"] = warning
            typer.echo(json_line(view))
            return
        view = ex.to_json()
        if replay_run is not None:
            view["traffic"] = f"replay run {replay_run}"
        width = max(len(k) for k in view)
        for key, value in view.items():
            if value is None or value == [] or value == {}:
                continue
            text = json_line(value) if isinstance(value, dict | list) else visible(value)
            typer.echo(f"{key:<{width}}  {text}")
        for name, data in bodies:
            if data is None:
                typer.echo(f"\n-- {name}: none")
                continue
            lines, warning = _body_lines(ex, data)
            typer.echo(f"\n-- {name} ({len(data)} bytes, {visible(ex.charset or 'utf-8')})")
            if warning:
                typer.secho(f"warning: {visible(warning)}", err=True, fg=typer.colors.YELLOW)
            for line in lines:
                typer.echo(visible(line))

    @capture_app.command("export")
    def export(
        out: Annotated[Path, typer.Option("--out", help="Folder to write into (created when missing).")],
        store: StoreOpt = DEFAULT_STORE,
        fmt: Annotated[
            str,
            typer.Option(
                "--format",
                help="hl7: the message bytes; mllp: each message MLLP-framed; "
                "mitm: HTTP exchanges as a mitmproxy flow file (capture.mitm); har: HAR 1.2 (capture.har).",
            ),
        ] = "hl7",
        single: Annotated[
            bool,
            typer.Option("--single", help="One file: an FHS/BHS batch (hl7) or a stream of frames (mllp)."),
        ] = False,
        responses: Annotated[
            Path | None,
            typer.Option(
                "--responses",
                metavar="DIR",
                help="Also write each response, same name, into this folder (kept apart from --out so that "
                "sending or replaying the --out folder never sends ACKs).",
            ),
        ] = None,
        channel: ChannelOpt = None,
        since: SinceOpt = None,
        until: UntilOpt = None,
        type_: TypeOpt = None,
        control_id: ControlIdOpt = None,
        outcome: OutcomeOpt = None,
        run: RunOpt = None,
        runs_option: RunsOpt = None,
        where: WhereOpt = None,
        limit: LimitOpt = None,
        force: ForceOpt = False,
        as_json: Annotated[
            bool, typer.Option("--json", help="Print a JSON summary of what was written.")
        ] = False,
        mask: MaskOpt = False,
        mask_policy: MaskPolicyOpt = None,
        mask_key_file: MaskKeyOpt = None,
        unmasked: UnmaskedOpt = False,
        store_key_file: StoreKeyFileOpt = None,
        store_key_env: StoreKeyEnvOpt = None,
    ) -> None:
        """Write captured HL7 v2 requests as files: <id>_<control id>.hl7, ready for `harness send` or replay.

        Patient data is masked with the default policy unless --mask-policy names another or --unmasked
        is given; every export is recorded in the audit log (who, when, which exchanges, masked or not).

        Bytes are written exactly as captured (CR segment separators, original charset). Files are
        created 0600 (folders created 0700) and never overwritten without --force. With --format mllp
        a message holding an MLLP block byte (0x0B, 0x1C) cannot be framed: it is skipped and named.
        """
        from harness.mllp import encode

        runs = parse_runs(runs_option)
        chosen = masker(mask, mask_policy, mask_key_file, [store, out], unmasked=unmasked)
        exported: list[int] = []

        def record() -> None:
            audited(
                store, "capture.export", str(store),
                {"format": fmt, "out": str(out.resolve()), **exchanges(exported), **masking(chosen)},
            )  # fmt: skip

        def counted(rows):
            for ex in rows:
                exported.append(ex.id)
                yield ex

        if fmt in ("mitm", "har"):  # HTTP exchanges for mitmweb and HAR viewers (cli/capture_interop.py)
            from harness.cli.capture_interop import export_http

            flt = _filter(
                channel, since, until, type_, control_id, outcome, None, run, where, limit, runs=runs
            )
            preflight(store)
            with _open(store) as db:
                rows = counted(masked(_query(db, flt, bodies=True), chosen))
                code = export_http(fmt, out, rows, as_json, force=force, scope=scope_text(runs, run))
            if exported:
                record()
            raise typer.Exit(code)
        if fmt not in ("hl7", "mllp"):
            raise fail_usage(f"--format {fmt!r}: expected hl7, mllp, mitm or har")
        if single and responses is not None:
            raise fail_usage("--responses writes one file per exchange; it cannot be combined with --single")
        if responses is not None and responses.resolve() == out.resolve():
            raise fail_usage("--responses needs a folder of its own, not the --out folder")
        flt = _filter(
            channel, since, until, type_, control_id, outcome, ["hl7v2"], run, where, limit, runs=runs
        )
        suffix = ".hl7" if fmt == "hl7" else ".mllp"
        for option, folder in (("--out", out), ("--responses", responses)):
            try:
                if folder is not None:
                    private_dir(folder)
            except OSError as exc:
                raise fail_usage(f"{option} {folder}: {exc.strerror or exc}") from None
        written: list[str] = []
        skipped: list[str] = []
        count = 0
        single_path = out / f"capture{suffix}"
        single_file = None  # opened at the first message: streamed, never held in memory
        field = b"|"

        def framed(ex, data: bytes, what: str) -> bytes | None:
            """The bytes to write, or None (noted) when MLLP framing cannot carry them."""
            if fmt != "mllp":
                return data
            try:
                return encode(data)
            except ValueError as exc:
                skipped.append(f"exchange {ex.id} {what}: {exc}; not framed (--format hl7 exports it)")
                return None

        preflight(store)
        try:
            with _open(store) as db:
                for ex in counted(masked(_query(db, flt, bodies=True), chosen, skip_withheld=True)):
                    if single:
                        data = framed(ex, ex.request, "request")
                        if data is None:
                            continue
                        count += 1
                        if single_file is None:
                            single_file = open_private(single_path, force=force)
                            if fmt == "hl7":
                                single_file.write(_batch_header(ex.request))
                                field = ex.request[3:4] if ex.request.startswith(b"MSH") else b"|"
                        if fmt == "mllp":
                            single_file.write(data)
                        else:
                            single_file.write(data if data.endswith(b"\r") else data + b"\r")
                        continue
                    data = framed(ex, ex.request, "request")
                    if data is None:
                        continue
                    count += 1
                    name = f"{ex.id:06d}_{_safe_name(ex.control_id)}"
                    target = out / f"{name}{suffix}"
                    write_private(target, data, force=force)
                    written.append(str(target))
                    if responses is not None and ex.response is not None:
                        reply = framed(ex, ex.response, "response")
                        if reply is not None:
                            write_private(responses / f"{name}{suffix}", reply, force=force)
                            written.append(str(responses / f"{name}{suffix}"))
            if single_file is not None:
                if fmt == "hl7":
                    single_file.write(_batch_trailer(count, field))
                written = [str(single_path)]
        except OutputExists as exc:
            raise fail_usage(str(exc)) from None
        except OSError as exc:
            raise fail_usage(f"--out {out}: {exc.strerror or exc}") from None
        finally:
            if single_file is not None:
                single_file.close()
            if exported:
                record()
        scope = scope_text(runs, run)
        if as_json:
            report = {"exchanges": count, "files": written, "skipped": skipped, "traffic": scope}
            typer.echo(json.dumps(report, ensure_ascii=False))
        else:
            note = f"; skipped {len(skipped)}" if skipped else ""
            typer.echo(f"exported {count} exchange{'s' if count != 1 else ''} ({scope}) to {out}{note}")
        for line in skipped:
            typer.secho(f"skipped {visible(line)}", err=True, fg=typer.colors.YELLOW)
        if count == 0 and not skipped:
            typer.secho("nothing matched the filters", err=True, fg=typer.colors.YELLOW)

    @capture_app.command("summary")
    def summary(
        store: StoreOpt = DEFAULT_STORE,
        channel: ChannelOpt = None,
        since: SinceOpt = None,
        until: UntilOpt = None,
        type_: TypeOpt = None,
        outcome: OutcomeOpt = None,
        kind: KindOpt = None,
        run: RunOpt = None,
        runs_option: RunsOpt = None,
        where: WhereOpt = None,
        as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
        html: Annotated[
            Path | None,
            typer.Option("--html", help="Also write an HTML summary with charts over time (as inspect's)."),
        ] = None,
        store_key_file: StoreKeyFileOpt = None,
        store_key_env: StoreKeyEnvOpt = None,
    ) -> None:
        """Counts by channel, outcome and message type, and latency p50/p95/p99 (of live traffic unless
        --runs says otherwise: replayed exchanges would inflate counts and latencies)."""
        from harness.exchange import summarize

        runs = parse_runs(runs_option)
        flt = _filter(channel, since, until, type_, None, outcome, kind, run, where, None, runs=runs)
        with _open(store) as db:
            result = summarize(_query(db, flt, bodies=False))
            if html is not None:
                _summary_html(html, db, flt)
        result["traffic"] = scope_text(runs, run)
        if as_json:
            typer.echo(json_line(result))
            return
        _print_summary(result, store)

    def _summary_html(path: Path, db, flt) -> None:
        from harness.inspect.report import render_html
        from harness.inspect.run import describe_filter, summarize_exchanges
        from harness.store import parse_time

        page = summarize_exchanges(
            _query(db, flt, bodies=True),
            since=parse_time(flt.since) if flt.since is not None else None,
            until=parse_time(flt.until) if flt.until is not None else None,
            selection=describe_filter(flt),
            store=str(db.path),
        )
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(render_html(page), encoding="utf-8")
        except OSError as exc:
            raise fail_usage(f"--html {path}: {exc}") from None
        typer.secho(f"HTML summary: {path}", err=True)

    def _print_summary(result: dict, store: Path) -> None:
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table

        console = Console()
        span = f" from {result['first']} to {result['last']}" if result["exchanges"] else ""
        console.print(
            f"[bold]{result['exchanges']} exchanges[/] ({escape(result['traffic'])}) in "
            f"{escape(visible(store))}{span}",
            highlight=False,
        )
        if not result["exchanges"]:
            return

        def ms(value: float | None) -> str:
            return f"{value:.1f}" if value is not None else "-"

        latency = Table(title="latency (ms)", title_justify="left", box=None)
        for column in ("channel", "n", "p50", "p95", "p99", "max"):
            latency.add_column(column, justify="left" if column == "channel" else "right")
        for name, spread in [("all", result["latency_ms"]), *result["latency_ms_by_channel"].items()]:
            latency.add_row(
                escape(visible(name)),
                str(spread["count"]),
                ms(spread["p50"]),
                ms(spread["p95"]),
                ms(spread["p99"]),
                ms(spread["max"]),
            )
        console.print(latency)
        for title, key in (
            ("outcome", "by_outcome"),
            ("message type", "by_message_type"),
            ("fault", "by_fault"),
        ):
            if not result[key]:
                continue
            table = Table(title=title, title_justify="left", box=None)
            table.add_column(title)
            table.add_column("count", justify="right")
            for name, count in result[key].items():
                table.add_row(escape(visible(name)), str(count))
            console.print(table)
