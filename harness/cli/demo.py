"""`harness demo`: the main job on embedded defaults (see harness/demo.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    @app.command("demo")
    def demo(
        fixtures: Annotated[
            Path | None, typer.Option(help="HL7 v2 files to send (default: the project's fixtures/hl7v2).")
        ] = None,
        timeout: Annotated[float, typer.Option(min=0.001, help="Seconds to wait for each ACK.")] = 10.0,
    ) -> None:
        """Start the ACK server, send the fixtures through it, print the results; cleans up after itself.

        Exit 0 when every step went as expected, 1 otherwise.
        """
        from harness import demo as demo_run

        def echo(line: str) -> None:
            typer.echo(line)

        raise typer.Exit(demo_run.run(fixtures or demo_run.FIXTURES, echo=echo, timeout=timeout))
