"""Support for the medins tests: the fixture visit, with placeholders filled from earlier answers."""

from __future__ import annotations

import json
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "medins"


def steps() -> dict[str, dict]:
    """infno -> request envelope of the fixture visit."""
    out = {}
    for path in sorted(FIXTURES.glob("visit-*.json")):
        out[path.stem.rsplit("-", 1)[1]] = json.loads(path.read_text(encoding="utf-8"))
    return out


def fill(value, values: dict[str, str]):
    if isinstance(value, dict):
        return {k: fill(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, values) for v in value]
    if isinstance(value, str) and value.startswith("{{") and value.endswith("}}"):
        return values[value[2:-2]]
    return value


def with_msgid(envelope: dict, serial: int) -> dict:
    """The same envelope under a fresh msgid (the fixture's time, another 4-digit serial)."""
    return dict(envelope, msgid=envelope["msgid"][:-4] + f"{serial:04d}")
