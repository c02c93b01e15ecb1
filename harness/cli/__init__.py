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
        False, "--version", callback=_version, is_eager=True, metavar="", help="Print the version and exit."
    ),
) -> None:
    """Interface test and proxy harness."""
    import sys

    crypto = sys.modules.get("harness.store.crypto")
    if crypto is not None:  # store keys an earlier command in this process was given (tests) are not kept
        crypto.reset_default()


def _load_commands() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        module.register(app, groups)


_load_commands()


def _fill_metavars() -> None:
    from harness.cli._metavars import fill

    fill(app)


_fill_metavars()


def main() -> None:
    """Run the command; whatever escapes it ends as one line and exit 2, never a traceback (a user
    cannot act on one; HARNESS_DEBUG=1 shows it for a bug report)."""
    import os
    import sys

    try:
        app(standalone_mode=True)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        raise SystemExit(130) from None
    except Exception as exc:  # noqa: BLE001 - the last line of defence, by design
        if os.environ.get("HARNESS_DEBUG"):
            raise
        from harness.terminal_text import visible

        where = _innermost(exc)
        sys.stderr.write(
            f"error: {visible(type(exc).__name__)}: {visible(exc)}{where} "
            "(an unexpected failure of harness; HARNESS_DEBUG=1 shows the traceback)\n"
        )
        raise SystemExit(2) from None


def _innermost(exc: BaseException) -> str:
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return ""
    return f" at {tb.tb_frame.f_code.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno}"
