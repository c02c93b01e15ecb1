"""Command groups that more than one module adds commands to, made by whichever module comes first, so
the commands do not depend on the order modules are loaded in."""

from __future__ import annotations

import typer

HELP = {
    "capture": "Read the capture store: list, show, export and summarise captured exchanges.",
}


def group(app: typer.Typer, groups: dict[str, typer.Typer], name: str) -> typer.Typer:
    """The `harness NAME` group, created and added to `app` the first time it is asked for."""
    if name not in groups:
        groups[name] = typer.Typer(help=HELP[name], no_args_is_help=True)
        app.add_typer(groups[name], name=name)
    return groups[name]
