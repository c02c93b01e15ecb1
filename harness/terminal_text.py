"""Text from captured messages made safe for an operator's terminal: control characters shown, not run.

A captured field can hold anything a sender put there: ESC sequences that clear the screen, retitle the
window or rewrite earlier lines, C1 controls (0x9B is a one-byte CSI), bidirectional overrides that make
text read differently from what it is. Printed raw they act on the terminal of whoever reads the
capture. `visible` writes each as a Python-style escape (`\\x1b`, `\\x9b`, `\\u202e`) so it is seen and
inert; everything else, Chinese text included, is unchanged.
"""

from __future__ import annotations

import json
import re
from typing import Any

_INVISIBLE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_INVISIBLE_KEEP_TAB_NL = re.compile(
    r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)
_JSON_UNSAFE = re.compile(r"[\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def visible(text: Any, *, lines: bool = False) -> str:
    """`text` with control and direction-changing characters written as escapes; with `lines`, newlines
    and tabs stay as they are (multi-line output)."""
    text = "" if text is None else str(text)
    return (_INVISIBLE_KEEP_TAB_NL if lines else _INVISIBLE).sub(_escape, text)


def json_line(value: Any) -> str:
    """JSON for a terminal or a pipe: `json.dumps` already escapes C0 controls; DEL, C1 controls and
    direction overrides are escaped here too (as JSON \\u escapes, so the data read back is the same)."""
    text = json.dumps(value, ensure_ascii=False)
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
