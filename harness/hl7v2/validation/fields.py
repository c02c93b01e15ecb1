"""Field checks of one segment: usage (required fields), cardinality (repetitions), values.

Rules are compiled once per (version, segment id) from the standard, with each field's usage reconciled
from two sources (usage.py): the required field numbers, the conditional ones whose condition is known,
the ones the sources disagree on, and for every defined field its maximum repetitions and its datatype
checker. Checking a segment
walks only the fields present in it, so the many empty fields of PID or PV1 cost nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.hl7v2.reference import Standard
from harness.hl7v2.validation.datatypes import Ctx, _text_limit, checker
from harness.hl7v2.validation.findings import Location, finding
from harness.hl7v2.validation.usage import Element, segment_elements


@dataclass(slots=True)
class FieldRule:
    number: int
    name: str
    datatype: str
    min: int
    max: int
    table: str | None
    check: object
    element: Element | None = None


@dataclass(slots=True)
class SegmentRules:
    segment: str
    fields: tuple[FieldRule, ...]
    required: tuple[int, ...]
    conditional: tuple[int, ...] = ()  # usage C with a known condition (usage.CONDITIONS)
    disputed: tuple[int, ...] = ()  # required in one source only: empty -> HL7-SOURCE-CONFLICT
    checks: tuple = ()  # by field number (index 0 unused): the datatype checker
    limits: tuple = ()  # by field number: text length limit for inline checks, 0 = call the checker
    clean: tuple = ()  # by field number: values seen to pass every check (standard delimiters only)


_RULES: dict[tuple[str, str], SegmentRules | None] = {}
MEMO_LIMIT = 4096  # clean values remembered per field


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
    elements = segment_elements(std, segment)
    for i, (_name, dt, lo, hi, table) in enumerate(defs):
        el = elements[i]
        rules.append(FieldRule(i + 1, el.name, dt, lo, hi, table, checker(std, dt, table, 0, el.name), el))
    own = segment == "MSH"  # MSH-1 and MSH-2 are the delimiters themselves, checked when the message is split
    required = tuple(r.number for r in rules if r.element.usage == "R" and not (own and r.number <= 2))
    conditional = tuple(r.number for r in rules if r.element.condition is not None)
    disputed = tuple(
        r.number
        for r in rules
        if r.element.conflict and r.element.condition is None and not (own and r.number <= 2)
    )
    checks = (None, *(r.check for r in rules))
    limits = (0, *(_text_limit(std, r.datatype, r.table) if r.max == 1 else 0 for r in rules))
    clean = tuple(set() for _ in range(len(rules) + 1))
    got = _RULES[key] = SegmentRules(
        segment, tuple(rules), required, conditional, disputed, checks, limits, clean
    )
    return got


def clear_memo() -> None:
    """Forget the remembered clean values (benchmarks measure a cold start with it)."""
    for rules in _RULES.values():
        if rules is not None:
            for seen in rules.clean:
                seen.clear()


def _label(rule: FieldRule) -> str:
    return rule.name or f"field {rule.number}"


def _empty(fields: list[str], k: int) -> bool:
    return k >= len(fields) or not fields[k] or fields[k] == '""'


def _usage_findings(ctx: Ctx, rules: SegmentRules, fields: list[str], shift: int) -> None:
    """Conditional fields whose condition holds, and fields the two sources disagree on, left empty."""
    out = ctx.out
    seg = rules.segment
    for number in rules.conditional:
        if _empty(fields, number - shift):
            rule = rules.fields[number - 1]
            cond = rule.element.condition
            if not _empty(fields, cond.when_valued - shift):
                out.append(
                    finding(
                        "HL7-FIELD-REQUIRED",
                        Location(ctx.seg_index, seg, number),
                        f"{seg}-{number} ({_label(rule)}) is conditional (C) and required here because "
                        f"{cond.text}, but it is empty",
                        expected=f"a {rule.datatype} value",
                        actual="empty",
                    )
                )
    for number in rules.disputed:
        if _empty(fields, number - shift):
            rule = rules.fields[number - 1]
            out.append(
                finding(
                    "HL7-SOURCE-CONFLICT",
                    Location(ctx.seg_index, seg, number),
                    f"{seg}-{number} ({_label(rule)}) is empty; the sources of the standard disagree on "
                    f"whether it is required ({rule.element.conflict}), so this is not counted as an error",
                    expected=f"{rule.element.usage} (reconciled usage)",
                    actual="empty",
                )
            )


def check_segment(std: Standard, ctx: Ctx, rules: SegmentRules, fields: list[str], is_msh: bool) -> None:
    """Append findings for one segment's fields (fields[0] is the segment id)."""
    out = ctx.out
    seg = rules.segment
    ctx.field_defs = rules.fields
    # fields[k] is field k, except in MSH where fields[1] is MSH-2 (MSH-1 is the separator itself)
    shift = 1 if is_msh else 0
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
    if rules.conditional or rules.disputed:
        _usage_findings(ctx, rules, fields, shift)
    rep = ctx.rep
    esc = ctx.esc
    comp = ctx.comp
    checks = rules.checks
    limits = rules.limits
    clean = rules.clean
    memo = ctx.standard_delimiters and not ctx.coding_systems  # remembered values hold for every profile
    obx_type = None
    if seg == "OBX" and len(fields) > 2 and fields[2]:
        obx_type = fields[2].split(comp, 1)[0]
    for k in range(2 if is_msh else 1, len(fields)):
        value = fields[k]
        if not value:
            continue
        number = k + shift
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
        lim = limits[number]
        if lim and len(value) <= lim and rep not in value and comp not in value and esc not in value:
            continue  # a plain text value within its length: nothing to check
        seen = clean[number] if memo else None
        if seen is not None and value in seen:
            continue  # the same value passed every check before (codes, units, ids repeat a lot)
        before = len(out)
        ctx.field = number
        check = checks[number]
        if obx_type is not None and number == 5:
            rule = rules.fields[4]
            if rule.datatype == "varies" and (std.is_base(obx_type) or obx_type in std.datatypes):
                check = checker(std, obx_type, None, 0, "observation value")
        if rep in value and not (is_msh and number == 2):
            reps = value.split(rep)
            rule = rules.fields[number - 1]
            disputed = rule.element.repeat_conflict
            if (rule.max == 1 or disputed) and sum(1 for r in reps if r) > 1:
                if disputed:
                    out.append(
                        finding(
                            "HL7-SOURCE-CONFLICT",
                            Location(ctx.seg_index, seg, number),
                            f"{seg}-{number} ({_label(rule)}) repeats {len(reps)} times; the sources of the "
                            f"standard disagree on whether it may ({disputed}), so this is not counted as "
                            f"an error",
                            expected="1 repetition" if rule.max == 1 else "repetitions allowed",
                            actual=f"{len(reps)} repetitions",
                        )
                    )
                else:
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
        if (
            seen is not None
            and len(out) == before
            and len(seen) < MEMO_LIMIT
            and not (obx_type and number == 5)
        ):
            seen.add(value)
