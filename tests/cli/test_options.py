"""One spelling of each shared option, and metavars that say what a value is, across every command."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer
from typer.testing import CliRunner

from harness.cli import app
from harness.cli._metavars import metavar_for
from harness.cli._options import STORE_HELP


def commands() -> list[tuple[str, Any]]:
    """Every leaf command of `harness`, with its full name."""
    found: list[tuple[str, Any]] = []

    def walk(name: str, command: Any) -> None:
        if hasattr(command, "commands"):  # a group (typer may bring its own copy of click)
            for sub_name, sub in command.commands.items():
                walk(f"{name} {sub_name}".strip(), sub)
        else:
            found.append((name, command))

    walk("", typer.main.get_command(app))
    return found


def test_there_are_commands_to_check() -> None:
    names = [name for name, _ in commands()]
    assert {"proxy", "replay", "capture list", "store info", "validate", "send", "fault add"} <= set(names)


def test_no_command_spells_two_options_the_same() -> None:
    for name, command in commands():
        seen: dict[str, str] = {}
        for param in command.params:
            for opt in [*param.opts, *param.secondary_opts]:
                assert opt not in seen, f"harness {name}: {opt} is both {seen[opt]} and {param.name}"
                seen[opt] = param.name


def test_store_is_one_option_everywhere() -> None:
    stores = [(name, p) for name, cmd in commands() for p in cmd.params if "--store" in (p.opts or ())]
    assert len(stores) >= 10, [name for name, _ in stores]
    for name, param in stores:
        assert param.opts == ["--store", "-s"], (name, param.opts)
        assert param.metavar == "PATH|URL", name
        if name == "certify":  # giving --store is what selects passive mode: never from the environment
            assert param.envvar is None
            continue
        assert param.envvar == "HARNESS_STORE", name
        assert param.help == STORE_HELP, name


def test_no_option_shows_a_python_type_in_help() -> None:
    runner = CliRunner()
    python_types = re.compile(r"<(?:list\[|bool>|str>|int>|float>|path>|Path>)")
    for name, _ in commands():
        result = runner.invoke(app, [*name.split(), "--help"], env={"COLUMNS": "200"}, prog_name="harness")
        assert result.exit_code == 0, (name, result.output)
        typers_own = ("--help", "--install-completion", "--show-completion")
        options = [line for line in result.output.splitlines() if re.match(r"[│|]\s*(\*\s*)?--", line)]
        shown = [ln for ln in options if python_types.search(ln) and not any(o in ln for o in typers_own)]
        assert not shown, f"harness {name} --help:\n" + "\n".join(shown)


def test_metavars_by_name_and_type() -> None:
    assert metavar_for("json", bool) == ""
    assert metavar_for("store", str | None) == "PATH|URL"
    assert metavar_for("channel", list[str] | None) == "NAME"
    assert metavar_for("to", str) == "HOST:PORT"
    assert metavar_for("since", str | None) == "TIME"
    assert metavar_for("ack_timeout", float) == "SECONDS"
    assert metavar_for("delay_ms", int) == "MS"
    assert metavar_for("report_html", Path | None) == "PATH"
    assert metavar_for("concurrency", int) == "N"
    assert metavar_for("rate", float) == "NUMBER"
    assert metavar_for("order_key", str) == "TEXT"


def test_capture_commands_do_not_depend_on_the_order_modules_load() -> None:
    from harness.cli import capture, capture_interop

    for order in ((capture_interop, capture), (capture, capture_interop)):
        fresh, groups = typer.Typer(), {}
        for module in order:
            module.register(fresh, groups)
        group = typer.main.get_command(fresh).commands["capture"]
        assert sorted(group.commands) == ["export", "import", "list", "show", "summary"]
