"""`harness mask`: masked copies of capture stores and of message files, to share with vendors.

Moves bytes only: what is masked and how lives in harness.mask; this command picks the inputs, the
policy and the key, and says what was written and what could not be masked.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from harness.cli._audit import audited, masking, preflight
from harness.cli._common import EXIT_CHECKS_FAILED, EXIT_OK, fail_usage
from harness.cli._mask_options import build
from harness.cli._store_filter import check_times
from harness.cli._store_key import StoreKeyEnvOpt, StoreKeyFileOpt

_SQLITE = b"SQLite format 3\x00"
KINDS = ("auto", "hl7v2", "fhir", "medins", "cdc", "soap", "hl7v3")


def _is_store(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(16) == _SQLITE
    except OSError:
        return False


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    @app.command("mask")
    def mask(
        inputs: Annotated[
            list[Path] | None,
            typer.Argument(
                metavar="INPUT...",
                help="A capture store (SQLite), or message files and folders: HL7 v2 (.hl7, batches, MLLP "
                "frames), JSON (FHIR, medical insurance, CDC) and XML (SOAP, HL7 v3).",
            ),
        ] = None,
        out: Annotated[
            Path | None,
            typer.Option(
                "--out", "-o", help="Store: the masked copy (a new file). Files: the folder to write into."
            ),
        ] = None,
        policy: Annotated[
            str,
            typer.Option(
                "--policy", "-p", help="Masking policy: a name under specs/masking/ or a YAML file."
            ),
        ] = "default",
        key_file: Annotated[
            Path | None,
            typer.Option(
                "--key-file",
                "-k",
                help="The masking key, kept apart from the data. Default: $HARNESS_MASK_KEY_FILE, else "
                "$HARNESS_MASK_KEY (the secret itself).",
            ),
        ] = None,
        kind: Annotated[
            str,
            typer.Option("--kind", help="Files: auto (by content), hl7v2, fhir, medins, cdc, soap or hl7v3."),
        ] = "auto",
        charset: Annotated[
            str | None, typer.Option("--charset", help="Files: HL7 v2 charset instead of MSH-18 (e.g. GBK).")
        ] = None,
        channel: Annotated[
            list[str] | None, typer.Option("--channel", "-c", help="Store: only this channel (repeatable).")
        ] = None,
        since: Annotated[
            str | None, typer.Option("--since", help="Store: from this time (ISO 8601 or -2h).")
        ] = None,
        until: Annotated[str | None, typer.Option("--until", help="Store: up to this time.")] = None,
        new_key: Annotated[
            Path | None,
            typer.Option(
                "--new-key", metavar="FILE", help="Write a new random key to FILE (mode 0600) and exit."
            ),
        ] = None,
        as_json: Annotated[
            bool, typer.Option("--json", help="JSON lines: one per file, then a summary.")
        ] = False,
        store_key_file: StoreKeyFileOpt = None,
        store_key_env: StoreKeyEnvOpt = None,
    ) -> None:
        """Write a masked copy: of a capture store (every request, response and accept ACK, and the
        columns that hold identifiers), or of message files into a folder.

        Pseudonyms are consistent: with the same key, the same 身份证, name or phone number masks to the
        same value in every message, kind and run. Content that cannot be masked (malformed, cut short in
        the capture) is withheld, never copied as it was. Exit 0: everything masked; 1: something was
        withheld or skipped; 2: usage error (no key, a bad policy, an output that exists).

        Examples: `harness mask --new-key ~/.config/harness/mask.key`;
        `harness mask reports/captures.db --out /tmp/for-vendor.db --since -2h -k ~/.config/harness/mask.key`;
        `harness mask fixtures/hl7v2/ --out /tmp/masked/`.
        """
        from harness.mask import key as keys

        if new_key is not None:
            try:
                written = keys.new(new_key)
            except (keys.MaskKeyError, OSError) as exc:
                raise fail_usage(str(exc)) from None
            typer.echo(f"new masking key written to {written} (mode 0600); keep it apart from the data")
            return
        if not inputs:
            raise fail_usage("give a capture store or message files to mask (or --new-key FILE)")
        if out is None:
            raise fail_usage("--out is required: the masked copy is always written somewhere new")
        if kind not in KINDS:
            raise fail_usage(f"--kind {kind!r}: expected one of {', '.join(KINDS)}")
        stores = [p for p in inputs if p.is_file() and _is_store(p)]
        if stores:
            if len(inputs) > 1:
                raise fail_usage(
                    "a capture store is masked on its own: give one store, or only message files"
                )
            raise typer.Exit(_mask_store(stores[0], out, policy, key_file, channel, since, until, as_json))
        if channel or since or until:
            raise fail_usage(
                "--channel, --since and --until select exchanges of a store; the inputs are files"
            )
        raise typer.Exit(_mask_files(inputs, out, policy, key_file, kind, charset, as_json))


def _mask_store(source: Path, out: Path, policy: str, key_file, channel, since, until, as_json: bool) -> int:
    from harness.mask.store import MaskStoreError, mask_store
    from harness.store import ExchangeFilter

    check_times(since, until)
    masker = build(policy, key_file, [source, out])
    flt = ExchangeFilter(channel=channel or None, since=since, until=until)
    preflight(source)
    progress = None
    if sys.stderr.isatty() and not as_json:

        def progress(count: int) -> None:
            typer.echo(f"\r{count} exchanges masked", nl=False, err=True)

    try:
        result = mask_store(masker, source, out, flt, progress=progress)
    except MaskStoreError as exc:
        raise fail_usage(str(exc)) from None
    if progress is not None:
        typer.echo("", err=True)
    summary = {**result.to_json(), "policy": masker.policy.name, "key_id": masker.key_id}
    audited(
        source, "mask", str(source),
        {"out": str(out.resolve()), "exchanges": result.exchanges, "withheld": result.withheld,
         "channels": channel or [], "since": since, "until": until, **masking(masker)},
    )  # fmt: skip
    if as_json:
        typer.echo(json.dumps(summary, ensure_ascii=False))
    else:
        typer.echo(
            f"masked {result.exchanges} exchange{'s' if result.exchanges != 1 else ''} and {result.runs} "
            f"run{'s' if result.runs != 1 else ''} of {source} into {out} (policy {masker.policy.name}, "
            f"key {masker.key_id})"
        )
        if result.withheld:
            typer.secho(
                f"{result.withheld} exchange(s) had a body that could not be masked: withheld (see notes)",
                err=True,
                fg=typer.colors.YELLOW,
            )
        if result.unlinked:
            typer.secho(
                f"{result.unlinked} replayed exchange(s) lost the link to an original outside the selection",
                err=True,
                fg=typer.colors.YELLOW,
            )
    return EXIT_CHECKS_FAILED if result.withheld else EXIT_OK


def _mask_files(
    inputs: list[Path], out: Path, policy: str, key_file, kind: str, charset, as_json: bool
) -> int:
    from harness.mask.files import mask_files, plan
    from harness.mask.masker import MaskError

    masker = build(policy, key_file, [*inputs, out])
    if out.exists() and not out.is_dir():
        raise fail_usage(f"--out {out}: not a folder (files are written into a folder)")
    try:
        pairs = plan(inputs, out)
    except MaskError as exc:
        raise fail_usage(str(exc)) from None
    written = failed = messages = 0
    for result in mask_files(masker, pairs, kind=None if kind == "auto" else kind, charset=charset):
        if result.error:
            failed += 1
        else:
            written += 1
            messages += result.messages
        if as_json:
            typer.echo(json.dumps(result.to_json(), ensure_ascii=False))
        elif result.error:
            typer.secho(f"not written: {result.source}: {result.error}", err=True, fg=typer.colors.YELLOW)
    summary = {"files": written, "messages": messages, "not_written": failed, "out": str(out),
               "policy": masker.policy.name, "key_id": masker.key_id}  # fmt: skip
    if as_json:
        typer.echo(json.dumps({"type": "summary", **summary}, ensure_ascii=False))
    else:
        typer.echo(
            f"masked {written} file{'s' if written != 1 else ''} ({messages} message"
            f"{'s' if messages != 1 else ''}) into {out} (policy {masker.policy.name}, key {masker.key_id})"
            + (f"; {failed} not written (could not be masked)" if failed else "")
        )
    return EXIT_CHECKS_FAILED if failed else EXIT_OK
