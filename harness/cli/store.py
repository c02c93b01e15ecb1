"""`harness store info|prune|copy`: look after a capture store, SQLite or PostgreSQL.

The commands only move values between the terminal and `harness.store` (retention in each backend's
`prune`, copies in `harness.store.transfer`).
"""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer

from harness.cli._common import fail_usage
from harness.cli._options import DEFAULT_STORE, StoreOpt

JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON object.")]


def _open(target: str, *, create: bool = False):
    from harness.store import Store, StoreError

    try:
        return Store(target, create=create)
    except StoreError as exc:
        raise fail_usage(str(exc)) from None


def _iso(epoch: float | None) -> str | None:
    from harness.exchange import iso_time

    return iso_time(epoch) if epoch is not None else None


def info(store: StoreOpt = DEFAULT_STORE, as_json: JsonOpt = False) -> None:
    """What the store holds: backend, schema version, exchanges per proxy instance and their span."""
    with _open(store) as db:
        data = db.info()
    for key in ("first", "last"):
        data[key] = _iso(data[key])
    for row in data["by_proxy"]:
        row["first"], row["last"] = _iso(row["first"]), _iso(row["last"])
    if as_json:
        typer.echo(json.dumps(data, ensure_ascii=False))
        return
    where = data.get("file") or data.get("url")
    typer.echo(f"{where}: {data['backend']}, schema v{data['schema_version']}, store id {data['store_id']}")
    span = f" from {data['first']} to {data['last']}" if data["exchanges"] else ""
    typer.echo(f"{data['exchanges']} exchanges{span}; {data['runs']} runs; {data['bytes']:,} bytes")
    if "partitions" in data:
        typer.echo(
            f"{data['partitions']} day partitions ({data['first_partition']} .. {data['last_partition']})"
        )
    for row in data["by_proxy"]:
        name = row["proxy"] or "(no instance)"
        typer.echo(f"  {name}: {row['exchanges']} from {row['first']} to {row['last']}")


def prune(
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than",
            metavar="AGE|TIME",
            help="Remove exchanges that started before this: an age (90d, 12w, 36h) or an ISO 8601 time.",
        ),
    ],
    store: StoreOpt = DEFAULT_STORE,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what would go; change nothing.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Retention: delete exchanges older than --older-than (PostgreSQL: whole day partitions are dropped).

    Runs are kept. Proxies writing the store go on meanwhile.
    """
    from harness.store import ExchangeFilter, StoreError, parse_time

    try:
        before = parse_time(older_than)
    except ValueError as exc:
        raise fail_usage(f"--older-than: {exc}") from None
    if before > time.time():
        raise fail_usage(f"--older-than {older_than}: that is in the future; it would remove everything")
    with _open(store) as db:
        if dry_run:
            count = db.count(ExchangeFilter(until=before))
            summary = {"before": _iso(before), "would_remove": count, "dry_run": True}
        else:
            try:
                say = None if as_json else lambda line: typer.echo(line, err=True)
                result = db.prune(before, progress=say)
            except StoreError as exc:
                raise fail_usage(str(exc)) from None
            summary = {
                "before": _iso(before),
                "removed": result.exchanges,
                "partitions_dropped": result.partitions,
                "rows_deleted": result.rows_deleted,
            }
    if as_json:
        typer.echo(json.dumps(summary, ensure_ascii=False))
    elif dry_run:
        typer.echo(f"{summary['would_remove']} exchanges started before {summary['before']} (dry run)")
    else:
        dropped = len(summary["partitions_dropped"])
        extra = f" ({dropped} whole day partition{'s' if dropped != 1 else ''} dropped)" if dropped else ""
        typer.echo(f"removed {summary['removed']} exchanges started before {summary['before']}{extra}")


def copy(
    source: Annotated[
        str,
        typer.Option(
            "--from", metavar="STORE", help="Copy from: a SQLite file (sqlite:FILE) or postgresql://..."
        ),
    ],
    target: Annotated[
        str, typer.Option("--to", metavar="STORE", help="Copy into (created when missing): same forms.")
    ],
    batch: Annotated[
        int, typer.Option("--batch", min=1, max=100_000, help="Exchanges per transaction.")
    ] = 1000,
    as_json: JsonOpt = False,
) -> None:
    """Copy every exchange and run between stores, bytes identical; run it again to resume or catch up.

    Ids are kept when the target has none in the way, else moved up by one offset (runs and replay
    links move with them). The target remembers how far each source got.
    """
    from harness.store import StoreError
    from harness.store.transfer import copy_store

    with _open(source) as src, _open(target, create=True) as dst:
        last = [0.0]

        def progress(done: int, total: int) -> None:
            now = time.monotonic()
            if not as_json and (now - last[0] >= 1.0 or done == total):
                last[0] = now
                typer.echo(f"copied {done}/{total} exchanges", err=True)

        try:
            result = copy_store(src, dst, batch=batch, progress=progress)
        except StoreError as exc:
            raise fail_usage(str(exc)) from None
    data = {"from": str(src.path), "to": str(dst.path), **result.to_json()}
    if as_json:
        typer.echo(json.dumps(data, ensure_ascii=False))
        return
    typer.echo(
        f"copied {result.copied} exchanges and {result.runs} runs from {src.path} to {dst.path}"
        + (f"; {result.already} were already there" if result.already else "")
        + (f"; {result.refreshed} completed since were brought up to date" if result.refreshed else "")
    )
    if result.nul_replaced:
        typer.secho(
            f"{result.nul_replaced} exchanges had NUL in their metadata: stored with U+FFFD "
            "(PostgreSQL text cannot hold NUL)",
            err=True,
            fg=typer.colors.YELLOW,
        )


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    store_app = typer.Typer(
        help="Look after a capture store: info, retention (prune), copies between SQLite and PostgreSQL.",
        no_args_is_help=True,
    )
    store_app.command("info")(info)
    store_app.command("prune")(prune)
    store_app.command("copy")(copy)
    app.add_typer(store_app, name="store")
    groups["store"] = store_app
