"""`harness capture import FILE` and the mitm/har side of `harness capture export` (HTTP exchanges).

A mitmproxy flow file or a HAR file becomes exchanges in the store (so a mitmweb session replays
here); captured HTTP exchanges become a flow file mitmweb opens, or a HAR file.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

import typer

from harness.cli._common import fail_usage
from harness.cli._options import DEFAULT_STORE, StoreOpt
from harness.codecs import KINDS as HTTP_KINDS
from harness.terminal_text import visible


def export_http(
    fmt: str, out: Path, exchanges: Iterable, as_json: bool, *, force: bool = False, scope: str = ""
) -> int:
    """Write the HTTP exchanges among `exchanges` to out/capture.{mitm,har} (0600, never over an existing
    file without `force`); returns the exit code."""
    from harness.http_wire import HttpError
    from harness.interop import from_exchange
    from harness.private_files import OutputExists, private_dir

    try:
        private_dir(out)
    except OSError as exc:
        raise fail_usage(f"--out {out}: {exc.strerror or exc}") from None
    skipped: list[str] = []

    def pairs():
        for ex in exchanges:
            if ex.protocol != "http":
                continue
            try:
                yield from_exchange(ex)
            except HttpError as exc:
                skipped.append(f"exchange {ex.id}: {exc}")

    target = out / f"capture.{fmt}"
    if fmt == "mitm":
        from harness.interop import mitm as module
    else:
        from harness.interop import har as module
    try:
        count = module.write(pairs(), target, force=force)
    except OutputExists as exc:
        raise fail_usage(str(exc)) from None
    except OSError as exc:
        raise fail_usage(f"--out {out}: {exc}") from None
    for line in skipped:
        typer.secho(f"skipped {visible(line)}", err=True, fg=typer.colors.YELLOW)
    if as_json:
        report = {"exchanges": count, "files": [str(target)], "skipped": skipped, "traffic": scope}
        typer.echo(json.dumps(report, ensure_ascii=False))
    else:
        within = f" ({scope})" if scope else ""
        typer.echo(f"exported {count} HTTP exchange{'s' if count != 1 else ''}{within} to {target}")
    if count == 0:
        typer.secho("no HTTP exchange matched the filters", err=True, fg=typer.colors.YELLOW)
    return 0


def _format_of(path: Path, given: str) -> str:
    if given != "auto":
        return given
    if path.suffix.lower() == ".har":
        return "har"
    head = path.read_bytes()[:1].lstrip() if path.is_file() else b""
    return "har" if head == b"{" else "mitm"


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    from harness.cli._groups import group  # made by whichever of capture and capture_interop comes first

    capture_app = group(app, groups, "capture")

    @capture_app.command("import")
    def import_(
        file: Annotated[Path, typer.Argument(metavar="FILE", help="A mitmproxy flow file or a HAR file.")],
        store: StoreOpt = DEFAULT_STORE,
        channel: Annotated[str, typer.Option(help="Channel name the imported exchanges get.")] = "imported",
        kind: Annotated[
            str, typer.Option(help="fhir, soap, medins, cdc or raw: how to read the bodies.")
        ] = "raw",
        fmt: Annotated[str, typer.Option("--format", help="auto (by content), mitm or har.")] = "auto",
        as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
    ) -> None:
        """Import the HTTP flows of FILE as exchanges (protocol http): they list, replay and compare here."""
        from harness.interop import to_exchange
        from harness.store import Store, StoreError

        if kind not in HTTP_KINDS:
            raise fail_usage(f"--kind {kind!r}: expected one of {', '.join(HTTP_KINDS)}")
        if not file.is_file():
            raise fail_usage(f"{file}: no such file")
        fmt = _format_of(file, fmt)
        if fmt not in ("mitm", "har"):
            raise fail_usage(f"--format {fmt!r}: expected auto, mitm or har")
        if fmt == "mitm":
            from harness.interop import mitm as module
        else:
            from harness.interop import har as module
        try:
            exchanges = [to_exchange(pair, channel=channel, kind=kind) for pair in module.read(file)]
        except ValueError as exc:
            raise fail_usage(str(exc)) from None
        try:
            from harness.store.location import make_room

            make_room(store)
            with Store(store) as db:
                run_id = db.create_run(
                    "capture", {"imported_from": str(file), "format": fmt, "kind": kind, "channel": channel}
                )
                for ex in exchanges:
                    ex.run_id = run_id
                ids = db.add_many(exchanges)
        except (StoreError, OSError) as exc:
            raise fail_usage(f"store {store}: {exc}") from None
        if as_json:
            typer.echo(json.dumps({"imported": len(ids), "run_id": run_id, "ids": ids, "format": fmt}))
        else:
            plural = "s" if len(ids) != 1 else ""
            typer.echo(f"imported {len(ids)} exchange{plural} from {file} ({fmt}): run {run_id}")
