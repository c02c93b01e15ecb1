"""Content regexes of fault rules (`re:...`), run on RE2: time linear in the text, whatever the pattern.

A rule's regex runs in the proxy's reactor on every matching message; with a backtracking engine a
pattern such as `^(a+)+$` against a long field stops the proxy for minutes (every channel, not only the
rule's). RE2 (google-re2) has no backtracking, so such a pattern costs what any other does. Constructs
that only a backtracking engine can run (backreferences, look-around, atomic groups, possessive
quantifiers) are refused with the reason, never silently run on Python's `re`.

Python spellings RE2 lacks but means the same by are translated first: `\\uXXXX`, `\\UXXXXXXXX` (to
`\\x{...}`) and `\\Z` (to `\\z`).
"""

from __future__ import annotations

import re
from typing import Any

from harness.proxy.faults.params import RuleError

MAX_PATTERN_CHARS = 1000
MAX_PROGRAM_BYTES = 1 << 20
"""RE2's memory budget for one compiled pattern (a{1000}{1000}-style blow-ups fail to compile)."""

_BACKTRACKING = (
    (re.compile(r"\(\?<?[=!]"), "look-around ((?=...), (?!...), (?<=...), (?<!...))"),
    (re.compile(r"\(\?P=|\\[1-9]|\\g<"), "a backreference"),
    (re.compile(r"\(\?>"), "an atomic group (?>...)"),
    (re.compile(r"[*+?}][+]"), "a possessive quantifier (*+, ++, ?+)"),
    (re.compile(r"\(\?\("), "a conditional group (?(...))"),
)


def _translate(pattern: str) -> str:
    """Python-only escapes rewritten in RE2 syntax; everything else passes through unchanged."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c != "\\" or i + 1 >= len(pattern):
            out.append(c)
            i += 1
            continue
        nxt = pattern[i + 1]
        if nxt == "u" and re.fullmatch(r"[0-9A-Fa-f]{4}", pattern[i + 2 : i + 6]):
            out.append(f"\\x{{{pattern[i + 2 : i + 6]}}}")
            i += 6
        elif nxt == "U" and re.fullmatch(r"[0-9A-Fa-f]{8}", pattern[i + 2 : i + 10]):
            out.append(f"\\x{{{pattern[i + 2 : i + 10]}}}")
            i += 10
        elif nxt == "Z":
            out.append("\\z")
            i += 2
        else:
            out.append(pattern[i : i + 2])
            i += 2
    return "".join(out)


def _options() -> Any:
    import re2

    options = re2.Options()
    options.log_errors = False  # a refused pattern is the rule's error, not a line on the proxy's stderr
    options.max_mem = MAX_PROGRAM_BYTES
    return options


def compile_regex(pattern: str, where: str) -> Any:
    """The compiled pattern (with `.search(text)`); RuleError naming `where` when it cannot run linearly."""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise RuleError(where, f"regular expression longer than {MAX_PATTERN_CHARS} characters")
    try:
        re.compile(pattern)
    except re.error as exc:
        raise RuleError(where, f"bad regular expression {pattern!r}: {exc}") from None
    import re2

    try:
        return re2.compile(_translate(pattern), _options())
    except re2.error as exc:
        raw = exc.args[0] if exc.args else exc
        reason = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    for construct, name in _BACKTRACKING:
        if construct.search(pattern):
            raise RuleError(
                where,
                f"regular expression {pattern!r} uses {name}, which needs a backtracking engine; content "
                "regexes run on RE2 (linear time, so no rule can stall the proxy): rewrite it without",
            )
    raise RuleError(
        where,
        f"regular expression {pattern!r} cannot run on RE2, the linear-time engine content regexes use: "
        f"{reason}",
    )
