"""Coding systems (HL7 table 0396): which names of a coding system (CWE.3, CWE.6, ...) are accepted.

Table 0396 is maintained outside the published versions (HL7 Terminology): each version prints the list known
when it went out, and senders use names registered later (SCT in a 2.5.1 message, CDCREC, PHINQUESTION). So a
name is accepted when it is
- in table 0396 of any HL7 version hl7apy knows (2.4-2.8.2) or of hl7-dictionary (the well-known names across
  versions: SCT, LN, I10, UCUM, ...);
- of one of the table's own patterns: 99zzz and L (local), HL7nnnn (an HL7 table), ISOnnnn, IBTnnnn, or an
  OID (2.16.840.1...);
- declared by the interface profile (`coding_systems:`, e.g. GB/T 2261.1 sex codes, GB 3304 nationalities,
  ICD-10 国临版).
Any other name that looks like a registered identifier (capitals, digits, `_ . + -`) is reported as info (it
may be newer than the tables here); a name that does not (spaces, lower case, a place name) is a warning, with
the known name it probably meant when only the letter case differs.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources

TABLE = "HL70396"
PATTERNS = re.compile(r"99[A-Za-z0-9]+|L|HL7\d{4}|ISO\d{4}|IBT\d{4}|\d+(?:\.\d+)+")
_PLACEHOLDERS = {"99zzz", "HL7nnnn", "ISOnnnn", "IBTnnnn", "99ZZZ", "HL7NNNN"}
_IDENTIFIER = re.compile(r"[A-Z0-9][A-Z0-9_.+\-]{0,39}")


@lru_cache(maxsize=1)
def known() -> frozenset[str]:
    """Every coding system name of table 0396 across the versions and sources here."""
    from harness.hl7v2 import reference

    names: set[str] = set()
    for version in reference.VERSIONS:
        names |= reference.load(version).table(TABLE) or frozenset()
    data = (
        resources.files(__package__)
        .joinpath("data", "hl7-dictionary", "coding-systems.json")
        .read_text(encoding="utf-8")
    )
    names |= set(json.loads(data)["values"])
    return frozenset(names - _PLACEHOLDERS)


@lru_cache(maxsize=1)
def _by_upper() -> dict[str, str]:
    return {name.upper(): name for name in known()}


def accepted(value: str, declared: frozenset[str] = frozenset()) -> bool:
    """Whether a coding system name is acceptable (known, of a pattern of the table, or declared)."""
    return value in known() or value in declared or PATTERNS.fullmatch(value) is not None


def judge(value: str) -> tuple[str, str]:
    """For a name not accepted: (severity, the sentence's ending saying why)."""
    meant = _by_upper().get(value.strip().upper())
    if meant is not None and meant != value:
        return "warning", f"; the registered name is {meant!r} (letter case and spaces matter)"
    if _IDENTIFIER.fullmatch(value):
        return "info", (
            "; it looks like a registered name newer than the tables here, or a local one: declare it under "
            "coding_systems in the interface profile"
        )
    return "warning", "; it does not look like the name of a coding system"
