"""Options several commands share, defined once: one spelling, one short flag, one environment variable
and one help text each (pip's cmdoptions.py is the model). A command names the alias it needs; what
differs between commands (the default, what happens without the option) is said in its own docstring."""

from __future__ import annotations

from typing import Annotated

import typer

STORE_ENV = "HARNESS_STORE"
DEFAULT_STORE = "reports/captures.db"
STORE_HELP = f"Capture store: a SQLite file or postgresql://user@host/db (${STORE_ENV})."


def _store() -> typer.models.OptionInfo:
    return typer.Option("--store", "-s", envvar=STORE_ENV, metavar="PATH|URL", help=STORE_HELP)


StoreOpt = Annotated[str, _store()]
"""--store, default DEFAULT_STORE."""
OptionalStoreOpt = Annotated[str | None, _store()]
"""--store where leaving it out means something else (the proxy's config, files instead of a store)."""
