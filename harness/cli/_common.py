"""Shared CLI conventions: exit codes and host:port parsing."""

from __future__ import annotations

import typer

from harness.address import parse_hostport

__all__ = ["EXIT_CHECKS_FAILED", "EXIT_OK", "EXIT_USAGE", "fail_usage", "parse_hostport"]

EXIT_OK = 0
EXIT_CHECKS_FAILED = 1
EXIT_USAGE = 2


def fail_usage(message: str) -> typer.Exit:
    """Print a usage or environment error to stderr and return the exit to raise."""
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(EXIT_USAGE)
