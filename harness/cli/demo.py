"""`harness demo`: the main job on embedded defaults (see harness/demo/)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    @app.command("demo")
    def demo(
        fixtures: Annotated[
            Path | None,
            typer.Option(
                metavar="PATH",
                help="HL7 v2 files to send (default: the fixtures/hl7v2 shipped with harness).",
            ),
        ] = None,
        out: Annotated[
            Path,
            typer.Option(
                "--out",
                "-o",
                metavar="DIR",
                help="Folder for the demo's files (proxy configurations, capture stores, reports); "
                "created if missing.",
            ),
        ] = Path("harness-demo"),
        timeout: Annotated[
            float, typer.Option(min=0.001, metavar="SECONDS", help="Seconds to wait for each ACK.")
        ] = 10.0,
    ) -> None:
        """Run the whole chain on loopback (simulators, proxy with faults, send, capture, certify); cleans up.

        Writes only into --out (./harness-demo by default).
        Exit 0 when every step went as expected, 1 otherwise.
        """
        from harness import demo as demo_run

        def echo(line: str) -> None:
            typer.echo(line)

        raise typer.Exit(demo_run.run(fixtures or demo_run.FIXTURES, out=out, echo=echo, timeout=timeout))
