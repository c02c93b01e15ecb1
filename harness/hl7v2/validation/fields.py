"""Field checks of one segment: usage (required fields), cardinality (repetitions), values.

Rules are compiled once per (version, segment id) from the standard: the required field numbers,
and for every defined field its maximum repetitions and its datatype checker. Checking a segment
walks only the fields present in it, so the many empty fields of PID or PV1 cost nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.hl7v2.reference import Standard
from harness.hl7v2.validation.datatypes import Ctx, checker
from harness.hl7v2.validation.findings import Location, finding


@dataclass(slots=True)
class FieldRule:
    number: int
    name: str
    datatype: str
    min: int
    max: int
    table: str | None
    check: object


@dataclass(slots=True)
class SegmentRules:
    segment: str
    fields: tuple[FieldRule, ...]
    required: tuple[int, ...]


_RULES: dict[tuple[str, str], SegmentRules | None] = {}


def rules_for(std: Standard, segment: str) -> SegmentRules | None:
    """Compiled rules of a segment in a version, or None when the version does not define it."""
    key = (std.version, segment)
    if key in _RULES:
        return _RULES[key]
    defs = std.segments.get(segment)
    if defs is None:
        _RULES[key] = None
        return None
    rules = []
    for i, (name, dt, lo, hi, table) in enumerate(defs):
        rules.append(FieldRule(i + 1, name, dt, lo, hi, table, checker(std, dt, table, 0, name)))
    required = tuple(r.number for r in rules if r.min > 0 and not (segment == "MSH" and r.number <= 2))
    got = _RULES[key] = SegmentRules(segment, tuple(rules), required)
    return got


def _label(rule: FieldRule) -> str:
    return rule.name.replace("_", " ").lower() if rule.name else f"field {rule.number}"


def check_segment(std: Standard, ctx: Ctx, rules: SegmentRules, fields: list[str], is_msh: bool) -> None:
    """Append findings for one segment's fields (fields[0] is the segment id)."""
    out = ctx.out
    seg = rules.segment
    # fields[k] is field k, except in MSH where fields[1] is MSH-2 (MSH-1 is the separator itself)
    shift = 1 if is_msh else 0
    nfields = len(fields) - 1 + shift
    ndef = len(rules.fields)
    for number in rules.required:
        k = number - shift
        if k >= len(fields) or not fields[k]:
            rule = rules.fields[number - 1]
            out.append(
                finding(
                    "HL7-FIELD-REQUIRED",
                    Location(ctx.seg_index, seg, number),
                    f"{seg}-{number} ({_label(rule)}) is required but empty",
                    expected=f"a {rule.datatype} value",
                    actual="empty",
                )
            )
    rep = ctx.rep
    start = 3 if is_msh else 1
    obx_type = None
    if seg == "OBX" and len(fields) > 2 and fields[2]:
        obx_type = fields[2].split(ctx.comp, 1)[0]
    for number in range(start, nfields + 1):
        value = fields[number - shift]
        if not value:
            continue
        if number > ndef:
            if value.strip():
                out.append(
                    finding(
                        "HL7-FIELD-UNDEFINED",
                        Location(ctx.seg_index, seg, number),
                        f"{seg} defines {ndef} fields in HL7 {std.version}; field {number} has a value",
                        expected=f"at most {ndef} fields",
                        actual=value,
                    )
                )
            continue
        rule = rules.fields[number - 1]
        ctx.field = number
        check = rule.check
        if obx_type is not None and number == 5 and rule.datatype == "varies":
            if std.is_base(obx_type) or obx_type in std.datatypes:
                check = checker(std, obx_type, None, 0, "observation value")
        if rep in value:
            reps = value.split(rep)
            if rule.max == 1 and sum(1 for r in reps if r) > 1:
                out.append(
                    finding(
                        "HL7-FIELD-REPETITION",
                        Location(ctx.seg_index, seg, number),
                        f"{seg}-{number} ({_label(rule)}) repeats {len(reps)} times; it may not repeat",
                        expected="1 repetition",
                        actual=f"{len(reps)} repetitions",
                    )
                )
            for i, r in enumerate(reps):
                if r and r != '""':
                    ctx.rep_no = i + 1
                    check(ctx, r, None, None)
            ctx.rep_no = None
        elif value != '""':
            check(ctx, value, None, None)
