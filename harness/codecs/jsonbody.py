"""Reading a JSON body that may be UTF-8, GBK or GB18030, as bodies from HIS systems are."""

from __future__ import annotations

import json
from typing import Any


def load(body: bytes, problems: list[str], what: str = "body") -> Any:
    """Parse a JSON body; on failure record a problem saying where and return None."""
    if not body:
        problems.append(f"{what} is empty")
        return None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        try:
            text = body.decode("gb18030")
        except UnicodeDecodeError:
            bad = body[exc.start : exc.start + 1]
            problems.append(f"{what} is neither UTF-8 nor GB18030: byte {exc.start} is {bad!r}")
            return None
        problems.append(f"{what} is not UTF-8 (decoded as GB18030)")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        problems.append(f"{what} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
        return None
