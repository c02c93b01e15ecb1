"""The store-key options every command that reads a capture store shares, defined once.

`--store-key-file FILE` (repeatable: a store rotated part-way, or holding copies from stores with
other keys, needs each) and `--store-key-env NAME` load the keys as the options are read, so a key
that will not do ends the command with exit 2 before anything else happens; every store the command
then opens uses them. Without either, $HARNESS_STORE_KEY_FILE or $HARNESS_STORE_KEY is used.
Named apart from `--mask-key-file`: the store key opens the capture, the masking key makes pseudonyms.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import click
import typer

from harness.cli._common import fail_usage

_META = "harness.store_keys"


def _ring(ctx: click.Context):
    from harness.store import crypto

    ring = ctx.meta.get(_META)
    if ring is None:
        ring = ctx.meta[_META] = crypto.Keyring()
        crypto.use(ring)  # given on the command line: the environment's keys are not read
        ctx.call_on_close(crypto.reset_default)
    return ring


def _take_files(ctx: click.Context, files: list[Path] | None) -> list[Path] | None:
    from harness.store import crypto

    for file in files or []:
        try:
            _ring(ctx).add(crypto.load_key_file(file), file)
        except crypto.StoreKeyError as exc:
            raise fail_usage(str(exc)) from None
    return files


def _take_env(ctx: click.Context, name: str | None) -> str | None:
    from harness.store import crypto

    if name:
        try:
            _ring(ctx).add(crypto.load_key_env(name))
        except crypto.StoreKeyError as exc:
            raise fail_usage(str(exc)) from None
    return name


StoreKeyFileOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--store-key-file",
        metavar="FILE",
        callback=_take_files,
        help="The key of an encrypted capture store: a file of its own (mode 0600), hex or base64. "
        "Repeatable. Default: $HARNESS_STORE_KEY_FILE, else $HARNESS_STORE_KEY.",
    ),
]
StoreKeyEnvOpt = Annotated[
    str | None,
    typer.Option(
        "--store-key-env",
        metavar="NAME",
        callback=_take_env,
        help="The key of an encrypted capture store, from this environment variable (hex or base64).",
    ),
]
