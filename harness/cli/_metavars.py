"""What each option's value is, in `--help`: `PATH`, `HOST:PORT`, `NAME`, `SECONDS`, never a Python type.

typer shows an option without a metavar as its annotation (`<list[str]>`, `<bool>` even for a flag).
`fill` gives every option and argument that has none a metavar from its name and type, once, before the
commands are built: flags get none, a store `PATH|URL`, a channel `NAME`, an address `HOST:PORT`, a time
`TIME`, a timeout `SECONDS`, paths `PATH`, numbers `N`; a metavar written beside the option wins.
"""

from __future__ import annotations

import enum
import typing
from pathlib import Path
from types import UnionType
from typing import Annotated, Any

import typer
from typer.models import ArgumentInfo, OptionInfo

_BY_NAME = (  # the parameter name says what the value is (first match wins)
    (("store", "store_path", "source", "destination"), "PATH|URL"),
    (("channel", "channels", "profile_name", "name", "policy"), "NAME"),
    (("to", "listen", "upstream", "primary", "backup"), "HOST:PORT"),
    (("admin", "url", "base_url"), "URL"),
    (("since", "until", "before", "older_than", "at"), "TIME"),
    (("message_type", "type_"), "TYPE"),
    (("control_id", "control_ids"), "ID"),
    (("where",), "PATH=VALUE"),
    (("charset", "encoding"), "CHARSET"),
)


def _base(annotation: Any) -> tuple[Any, bool]:
    """The value type without None, and whether the option repeats (a list)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        annotation = args[0] if len(args) == 1 else annotation
        origin = typing.get_origin(annotation)
    if origin in (list, tuple, set):
        args = typing.get_args(annotation)
        return (args[0] if args else str), True
    return annotation, False


def metavar_for(name: str, annotation: Any) -> str | None:
    """The metavar an option or argument named `name` with type `annotation` gets (None: leave it)."""
    base, _ = _base(annotation)
    if base is bool:
        return ""
    if isinstance(base, type) and issubclass(base, enum.Enum):
        return None  # typer lists the choices
    for names, label in _BY_NAME:
        if name in names:
            return label
    if "timeout" in name or name.endswith("_seconds") or name in ("duration", "interval"):
        return "SECONDS"
    if name == "ms" or name.endswith("_ms"):
        return "MS"
    if base is Path or name.endswith(("_file", "_dir", "path", "paths", "out", "html", "json", "junit")):
        return "PATH"
    if base is int:
        return "N"
    if base is float:
        return "NUMBER"
    return "TEXT"


def _fill_function(function: Any) -> None:
    try:
        hints = typing.get_type_hints(function, include_extras=True)
    except Exception:  # noqa: BLE001 - a command typer can build is one we can leave as it is
        return
    import inspect

    defaults = {
        name: param.default
        for name, param in inspect.signature(function).parameters.items()
        if isinstance(param.default, (OptionInfo, ArgumentInfo))
    }  # the older spelling, `name: str = typer.Option(...)`
    for name, hint in hints.items():
        if name in defaults:
            annotation, extras = hint, [defaults[name]]
        elif typing.get_origin(hint) is Annotated:
            annotation, *extras = typing.get_args(hint)
        else:
            continue
        for info in extras:
            if isinstance(info, (OptionInfo, ArgumentInfo)) and info.metavar is None:
                label = metavar_for(name, annotation)
                if label is None or (isinstance(info, ArgumentInfo) and label == ""):
                    continue
                repeats = _base(annotation)[1]
                info.metavar = f"{label}..." if repeats and isinstance(info, ArgumentInfo) else label
        if name not in defaults:  # under `from __future__ import annotations` each reading evaluates the
            function.__annotations__[name] = hint  # text again into new objects: keep the filled ones


def fill(app: typer.Typer) -> None:
    """Fill the metavars of every command of `app` and of its sub-apps."""
    if app.registered_callback is not None:
        _fill_function(app.registered_callback.callback)
    for command in app.registered_commands:
        _fill_function(command.callback)
    for group in app.registered_groups:
        if group.typer_instance is not None:
            fill(group.typer_instance)
