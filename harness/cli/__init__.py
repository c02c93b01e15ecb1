"""The `harness` command.

Each command lives in its own module in this package and exposes `register(app, groups)`;
modules are discovered at start-up so adding a command never edits this file. Command
modules import their heavy dependencies inside the command functions to keep
`harness --help` fast.
"""

from __future__ import annotations

import importlib
import pkgutil

import typer

from harness import __version__

app = typer.Typer(
    name="harness",
    help="Interface test and proxy harness: capture, replay, fault-inject and validate HL7 v2, FHIR, SOAP.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)
mock_app = typer.Typer(help="Simulators and ACK servers for tests and demos.", no_args_is_help=True)
app.add_typer(mock_app, name="mock")

groups: dict[str, typer.Typer] = {"mock": mock_app}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"harness {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Interface test and proxy harness."""


def _load_commands() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        module.register(app, groups)


_load_commands()


def main() -> None:
    app()
