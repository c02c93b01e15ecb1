"""Reading a JSON body that may be UTF-8, GBK or GB18030, as bodies from HIS systems are.

Never raises: a body too large, nested too deeply for the parser or holding a number too long for
Python to read (more than 4300 digits) is recorded as a problem and read as nothing.
"""

from __future__ import annotations

import json
from typing import Any

MAX_JSON_BYTES = 16 * 1024 * 1024
"""Larger bodies are not parsed for metadata (they are still forwarded and captured)."""


def load(body: bytes, problems: list[str], what: str = "body") -> Any:
    """Parse a JSON body; on failure record a problem saying where and return None."""
    if not body:
        problems.append(f"{what} is empty")
        return None
    if len(body) > MAX_JSON_BYTES:
        problems.append(f"{what} of {len(body)} bytes not read for metadata (over {MAX_JSON_BYTES} bytes)")
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
    except RecursionError:
        problems.append(f"{what} is nested too deeply to read for metadata")
    except ValueError as exc:  # e.g. an integer longer than Python reads (sys.get_int_max_str_digits)
        problems.append(f"{what} not read for metadata: {str(exc)[:120]}")
    return None
