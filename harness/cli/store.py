"""`harness store info|prune|copy`: look after a capture store, SQLite or PostgreSQL.

The commands only move values between the terminal and `harness.store` (retention in each backend's
`prune`, copies in `harness.store.transfer`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from harness.cli._common import fail_usage
from harness.cli._options import DEFAULT_STORE, StoreOpt
from harness.cli._store_key import StoreKeyEnvOpt, StoreKeyFileOpt

JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON object.")]


def _open(target: str, *, create: bool = False):
    from harness.store import Store, StoreError

    try:
        return Store(target, create=create)
    except StoreError as exc:
        raise fail_usage(str(exc)) from None


def _progress(verb: str, quiet: bool):
    """A progress callback (done, total) that says how far it got on stderr at most once a second."""
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if not quiet and (now - last[0] >= 1.0 or done == total):
            last[0] = now
            typer.echo(f"{verb} {done}/{total} exchanges", err=True)

    return progress


def _iso(epoch: float | None) -> str | None:
    from harness.exchange import iso_time

    return iso_time(epoch) if epoch is not None else None


def info(
    store: StoreOpt = DEFAULT_STORE,
    as_json: JsonOpt = False,
    store_key_file: StoreKeyFileOpt = None,
    store_key_env: StoreKeyEnvOpt = None,
) -> None:
    """What the store holds: backend, schema version, exchanges per proxy instance and their span,
    and whether its bodies are encrypted (and with which key id). Needs no key."""
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
    typer.echo(_encryption_text(data["encryption"]))


def _encryption_text(enc: dict) -> str:
    counts = enc["exchanges_by_key"]
    if enc["key_id"] is None and not any(k != "clear" for k in counts):
        return "bodies in clear (not encrypted)"
    head = (
        f"bodies encrypted with {enc['algorithm'] or 'a key'} (key id {enc['key_id']})"
        if enc["key_id"]
        else "not encrypted for new rows"
    )
    parts = [f"{n} {'in clear' if k == 'clear' else 'with key ' + k}" for k, n in counts.items()]
    return f"{head}; exchanges: {', '.join(parts) or 'none'}"


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
    store_key_file: StoreKeyFileOpt = None,
    store_key_env: StoreKeyEnvOpt = None,
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
    store_key_file: StoreKeyFileOpt = None,
    store_key_env: StoreKeyEnvOpt = None,
) -> None:
    """Copy every exchange and run between stores, bytes identical; run it again to resume or catch up.

    Ids are kept when the target has none in the way, else moved up by one offset (runs and replay
    links move with them). The target remembers how far each source got. Encrypted bodies move as
    they are, sealed, with their key ids (no key needed); a target that was not encrypted takes the
    source's key as its own.
    """
    from harness.store import StoreError
    from harness.store.transfer import copy_store

    with _open(source) as src, _open(target, create=True) as dst:
        try:
            result = copy_store(src, dst, batch=batch, progress=_progress("copied", as_json))
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


def rekey(
    new_key_file: Annotated[
        Path | None,
        typer.Option("--new-key-file", metavar="FILE", help="The new key: a file of its own, mode 0600."),
    ] = None,
    new_key_env: Annotated[
        str | None,
        typer.Option("--new-key-env", metavar="NAME", help="The new key, from this environment variable."),
    ] = None,
    store: StoreOpt = DEFAULT_STORE,
    batch: Annotated[
        int, typer.Option("--batch", min=1, max=100_000, help="Exchanges per transaction.")
    ] = 500,
    as_json: JsonOpt = False,
    store_key_file: StoreKeyFileOpt = None,
    store_key_env: StoreKeyEnvOpt = None,
) -> None:
    """Key rotation: re-seal every body of the store with a new key (bodies in clear are sealed too).

    Give the current key (--store-key-file, repeatable for several old keys) and the new one. One
    transaction per batch: cut short, the store opens with both keys and running rekey again finishes
    it. From the start, only the new key opens the store and writes to it: restart proxies writing it
    with the new key (rows they write with the old key meanwhile are re-sealed by the next run).
    """
    from harness.store import StoreError, crypto
    from harness.store.rekey import rekey as run

    if (new_key_file is None) == (new_key_env is None):
        raise fail_usage("give the new key: --new-key-file FILE or --new-key-env NAME (one of the two)")
    try:
        new = crypto.load_key_file(new_key_file) if new_key_file else crypto.load_key_env(new_key_env or "")
    except StoreError as exc:
        raise fail_usage(f"new key: {exc}") from None
    with _open(store) as db:
        if new_key_file is not None and db.kind == "sqlite":
            try:
                crypto.Keyring(files=[new_key_file]).check_apart(db.path)
            except StoreError as exc:
                raise fail_usage(str(exc)) from None
        try:
            result = run(db, new, batch=batch, progress=_progress("re-sealed", as_json))
        except StoreError as exc:
            raise fail_usage(str(exc)) from None
    if as_json:
        typer.echo(json.dumps({"store": str(db.path), **result.to_json()}, ensure_ascii=False))
    else:
        typer.echo(
            f"{db.path}: {result.resealed} exchanges re-sealed with {result.algorithm} key {result.key_id}"
            + (f"; {result.left} changed under every pass, run rekey again" if result.left else "")
        )
    if result.left:
        raise typer.Exit(1)


def keygen(
    path: Annotated[Path, typer.Argument(metavar="FILE", help="Where to write the key (never overwritten).")],
    algorithm: Annotated[
        str, typer.Option("--algorithm", help="aes-256-gcm (32 bytes) or sm4-gcm (16 bytes, 国密).")
    ] = "aes-256-gcm",
) -> None:
    """Write a new random store key (hex, mode 0600) and print its key id. Keep it apart from the store."""
    from harness.store import StoreError, crypto

    try:
        key = crypto.new_key_file(path, algorithm)
    except StoreError as exc:
        raise fail_usage(str(exc)) from None
    typer.echo(f"{path}: new {key.algorithm} key, key id {key.id}")


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    store_app = typer.Typer(
        help="Look after a capture store: info, retention (prune), copies between SQLite and PostgreSQL, "
        "encryption keys (keygen, rekey).",
        no_args_is_help=True,
    )
    store_app.command("info")(info)
    store_app.command("prune")(prune)
    store_app.command("copy")(copy)
    store_app.command("rekey")(rekey)
    store_app.command("keygen")(keygen)
    app.add_typer(store_app, name="store")
    groups["store"] = store_app
