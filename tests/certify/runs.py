"""Running `harness certify` in the certification tests and reading its JSON report."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from tests.processes import ROOT


def certify(*args: str) -> tuple[int, dict, str]:
    """`harness certify ARGS --json` run in this process (the targets are real processes on real sockets):
    exit code, the summary object, stderr. test_cli.py runs the command as a child too."""
    from typer.testing import CliRunner

    from harness.cli import app

    with contextlib.chdir(ROOT):
        result = CliRunner().invoke(app, ["certify", *args, "--json"])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    summary = json.loads(result.stdout) if result.stdout.strip().startswith("{") else {}
    return result.exit_code, summary, result.stderr


def report(summary: dict) -> dict:
    return json.loads(Path(summary["reports"]["json"]).read_text("utf-8"))
