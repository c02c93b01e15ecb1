"""Usage (R, O, C, B, W), repetitions and names of fields and components, from two sources reconciled.

hl7apy's tables (compiled by harness.hl7v2.reference) give every element a minimum, a maximum and a `WD`
datatype when withdrawn; they have no code for C (conditional), so a conditional element appears as required
in some versions and optional in others (OBX-4 is (1,1) in 2.3.1 and 2.7, (1,-1) in 2.8, (0,1) in 2.3-2.6).
The second source is the npm package hl7-dictionary (data/hl7-dictionary, built by
tools/build_hl7_dictionary.py): per version 2.1-2.7.1 each element's optionality R / O / C / B and its
repetitions, and the standard's element names. Versions it does not cover (2.8, 2.8.1, 2.8.2) are compared
with its nearest earlier version, 2.7.1, element by element where the names agree.

The rules (docs/VALIDATION.md lists them with the disagreements found):
- withdrawn in hl7apy (`WD`) -> W; marked B by hl7-dictionary -> B (allowed, kept for backward compatibility);
- C in hl7-dictionary -> C; required in hl7apy and in the version's hl7-dictionary tables but C in the 2.7
  tables (the first that tell C from R) -> C as well, with the disagreement noted;
- a C element is required only where its condition is known here (CONDITIONS) and holds; otherwise it is
  never reported as required, and an empty one that hl7apy calls required gets a HL7-SOURCE-CONFLICT warning;
- required in both -> R (HL7-FIELD-REQUIRED / HL7-COMPONENT-REQUIRED errors);
- required in one, optional in the other -> O, and an empty one gets a HL7-SOURCE-CONFLICT warning;
- required in both sources in one version only, optional in both in the versions before and after -> O
  with the disagreement noted (both descend from the same HL7 tables, so agreeing proves little there);
- repetitions: where one source lets a field repeat and the other does not, a repeated value is a
  HL7-SOURCE-CONFLICT warning instead of a HL7-FIELD-REPETITION error.
"""

from __future__ import annotations

import gzip
import json
import re
import threading
from dataclasses import dataclass, replace
from importlib import resources

from harness.hl7v2.reference import Standard

SECOND_SOURCE = "hl7-dictionary"
SECOND_VERSIONS = ("2.1", "2.2", "2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.7.1")
C_AWARE = "2.7"  # the first version whose hl7-dictionary tables mark conditional elements C
USAGES = ("R", "RE", "O", "C", "X", "B", "W")


@dataclass(frozen=True, slots=True)
class Condition:
    """A condition predicate of the standard evaluated here: 'required when field N is valued'."""

    when_valued: int
    text: str


# Conditions of C elements that the standard states plainly enough to evaluate; every other C element is
# never reported as required.
CONDITIONS: dict[tuple[str, int], Condition] = {
    # "If OBX-5, Observation Value, is valued then OBX-2, Value Type, must always be valued" (chapter 7)
    ("OBX", 2): Condition(5, "OBX-5 (Observation Value) is valued"),
}


@dataclass(frozen=True, slots=True)
class Element:
    """One field of a segment or component of a datatype, as the validator applies it."""

    usage: str  # R O C B W
    name: str  # the standard's name, for people
    max: int  # repetitions allowed (-1 unbounded); components: 1
    conflict: str | None = None  # the sources disagree on whether it is required: who says what
    repeat_conflict: str | None = None  # the sources disagree on whether it may repeat
    condition: Condition | None = None


_LOCK = threading.Lock()
_SECOND: dict[str, dict | None] = {}
_SEGMENTS: dict[tuple[str, str], tuple[Element, ...]] = {}
_BASE: dict[tuple[str, str], tuple[Element, ...]] = {}
_DATATYPES: dict[tuple[str, str], tuple[Element, ...]] = {}


def second_source(version: str) -> dict | None:
    """hl7-dictionary's tables for a version, or for the nearest earlier one it covers (None before 2.1)."""
    got = _SECOND.get(version, False)
    if got is not False:
        return got
    with _LOCK:
        candidates = [v for v in SECOND_VERSIONS if _key(v) <= _key(version)]
        doc = None
        if candidates:
            name = f"{candidates[-1]}.json.gz"
            data = resources.files(__package__).joinpath("data", "hl7-dictionary", name).read_bytes()
            doc = json.loads(gzip.decompress(data))
        _SECOND[version] = doc
    return doc


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def pretty(name: str) -> str:
    """hl7apy's SNAKE_CASE names as words ('SET_ID_PID' -> 'Set ID PID'), when no better name is known."""
    words = [w for w in name.split("_") if w]
    return " ".join(w if w in ("ID", "PID") or len(w) <= 2 else w.capitalize() for w in words) or name


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def _same(a: str, b: str) -> bool:
    x, y = _norm(a), _norm(b)
    return bool(x and y) and (x == y or x.startswith(y) or y.startswith(x))


def segment_elements(std: Standard, segment: str) -> tuple[Element, ...]:
    """The fields of a segment in a version (field n at index n-1); empty when the version lacks it."""
    key = (std.version, segment)
    got = _SEGMENTS.get(key)
    if got is None:
        got = _SEGMENTS[key] = _outliers(std, segment, _segment_base(std, segment))
    return got


def _segment_base(std: Standard, segment: str) -> tuple[Element, ...]:
    key = (std.version, segment)
    got = _BASE.get(key)
    if got is None:
        got = _BASE[key] = _elements(std, "segments", segment, std.segments.get(segment) or (), True)
    return got


def _outliers(std: Standard, segment: str, elements: tuple[Element, ...]) -> tuple[Element, ...]:
    """Required in one version only: both sources agree, but both call the field optional (or conditional)
    in the versions just before and after. Both sources descend from the same HL7 tables, so their agreement
    there is an error of that origin (ORC-7 and OBR-27 in 2.3, optional in the 2.3 text itself)."""
    from harness.hl7v2 import reference

    if not any(el.usage == "R" and el.conflict is None for el in elements):
        return elements
    i = reference.VERSIONS.index(std.version)
    if i == 0 or i == len(reference.VERSIONS) - 1:
        return elements
    prev, nxt = reference.VERSIONS[i - 1], reference.VERSIONS[i + 1]
    around = []
    for version in (prev, nxt):
        other = reference.load(version)
        around.append(_segment_base(other, segment) if segment in other.segments else ())
    out = list(elements)
    for k, el in enumerate(elements):
        if el.usage != "R" or el.conflict is not None:
            continue
        if all(k < len(a) and a[k].usage in ("O", "C") and _same(a[k].name, el.name) for a in around):
            out[k] = replace(
                el,
                usage="O",
                conflict=(
                    f"hl7apy's and {SECOND_SOURCE}'s {std.version} tables mark {segment}-{k + 1} required, "
                    f"but both mark it optional in {prev} and {nxt}"
                ),
            )
    return tuple(out)


def datatype_elements(std: Standard, datatype: str) -> tuple[Element, ...]:
    """The components of a composite datatype in a version (component n at index n-1)."""
    key = (std.version, datatype)
    got = _DATATYPES.get(key)
    if got is None:
        defs = std.datatypes.get(datatype) or ()
        # datatype tuples are (name, datatype, table, min): shape them like a field's (name, dt, min, max)
        shaped = tuple((c[0], c[1], c[3] if len(c) > 3 and c[3] else 0, 1) for c in defs)
        got = _DATATYPES[key] = _elements(std, "datatypes", datatype, shaped, False)
    return got


def _elements(std: Standard, kind: str, ident: str, defs, is_field: bool) -> tuple[Element, ...]:
    version = std.version
    second = second_source(version)
    exact = second is not None and second.get("version") == version
    src_name = f"{SECOND_SOURCE} {second['version']}" if second else SECOND_SOURCE
    entries = (second or {}).get(kind, {}).get(ident) or []
    aware = None
    if _key(version) < _key(C_AWARE):
        aware = (second_source(C_AWARE) or {}).get(kind, {}).get(ident) or []
    sep = "-" if is_field else "."
    out = []
    for i, (name, dt, lo, hi, *_rest) in enumerate(defs):
        where = f"{ident}{sep}{i + 1}"
        entry = entries[i] if i < len(entries) else None
        if entry is not None and not exact and dt != "WD" and not _same(name, entry[0]):
            entry = None  # a stand-in version's element at this place is another element
        ours = "W" if dt == "WD" else ("R" if (lo or 0) > 0 else "O")
        theirs = entry[2] if entry else None
        label = entry[0] if entry and entry[0] else pretty(name) if name != "WITHDRAWN" else "withdrawn"
        a_tables = f"hl7apy's {version} tables"
        usage, conflict = ours, None
        if ours == "W":
            pass
        elif theirs == "C":
            usage = "C"
            if ours == "R":
                conflict = f"{a_tables} mark {where} required, {src_name} conditional (C)"
        elif ours == "R" and aware and i < len(aware) and aware[i][2] == "C" and _same(name, aware[i][0]):
            usage = "C"
            conflict = (
                f"{a_tables} mark {where} required, but {SECOND_SOURCE} {C_AWARE} (the first tables that "
                f"tell C from R) marks it conditional (C)"
            )
        elif ours == "R" and theirs in ("O", "B"):
            usage = "O"
            conflict = f"{a_tables} mark {where} required, {src_name} optional"
        elif ours == "O" and theirs == "R":
            conflict = f"{src_name} marks {where} required, {a_tables} optional"
        elif ours == "O" and theirs == "B":
            usage = "B"
        repeat_conflict = None
        if is_field and entry is not None and ours != "W":
            their_max = entry[3]
            if (hi == 1) != (their_max == 1):
                repeat_conflict = (
                    f"{a_tables} let {where} repeat {'once' if hi == 1 else 'more than once'}, "
                    f"{src_name} {'once' if their_max == 1 else 'more than once'}"
                )
        condition = CONDITIONS.get((ident, i + 1)) if is_field and usage == "C" else None
        out.append(Element(usage, label, hi if is_field else 1, conflict, repeat_conflict, condition))
    return tuple(out)


def disagreements(std: Standard) -> list[tuple[str, str]]:
    """Every (element, sentence) where the sources disagree in a version: for docs and review."""
    found = []
    for seg in sorted(std.segments):
        for i, el in enumerate(segment_elements(std, seg), 1):
            for text in (el.conflict, el.repeat_conflict):
                if text:
                    found.append((f"{seg}-{i}", text))
    for dt in sorted(std.datatypes):
        for i, el in enumerate(datatype_elements(std, dt), 1):
            if el.conflict:
                found.append((f"{dt}.{i}", el.conflict))
    return found
