"""Datatype checks: values of DT, DTM/TS, TM, NM, SI, ID/IS (tables), composites and escapes.

A checker is compiled once per (version, datatype, table, depth) into a closure taking the
message's delimiters from a small context object; only a failing value builds a Location and a
Finding, so a clean field costs a few string operations.
"""

from __future__ import annotations

import re
from datetime import date

from harness.hl7v2 import charset as charsets
from harness.hl7v2.reference import Standard
from harness.hl7v2.validation import coding
from harness.hl7v2.validation.findings import Finding, Location, finding
from harness.hl7v2.validation.usage import datatype_elements

_DT = re.compile(r"(\d{4})(?:(\d{2})(\d{2})?)?")
_OFFSET = r"(?:[+-](?:1[0-4]|0\d)[0-5]\d)?"
_TM = re.compile(r"([01]\d|2[0-3])(?:([0-5]\d)(?:([0-5]\d)(?:\.\d{1,4})?)?)?" + _OFFSET)
_DTM = re.compile(
    r"(\d{4})(?:(\d{2})(?:(\d{2})(?:([01]\d|2[0-3])(?:([0-5]\d)(?:([0-5]\d)(?:\.\d{1,4})?)?)?)?)?)?" + _OFFSET
)
_NM = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)")
_SI = re.compile(r"\d+")

TEXTUAL = frozenset({"ST", "TX", "FT", "GTS", "TN", "CM", "varies"})
CODED = frozenset({"ID", "IS"})


def _valid_date(y: str, m: str | None, d: str | None) -> bool:
    try:
        date(int(y), int(m or 1), int(d or 1))
    except ValueError:
        return False
    return True


def check_dt(value: str) -> bool:
    m = _DT.fullmatch(value)
    return bool(m) and _valid_date(m.group(1), m.group(2), m.group(3))


def check_dtm(value: str) -> bool:
    m = _DTM.fullmatch(value)
    return bool(m) and _valid_date(m.group(1), m.group(2), m.group(3))


def check_tm(value: str) -> bool:
    return _TM.fullmatch(value) is not None


def check_nm(value: str) -> bool:
    return _NM.fullmatch(value) is not None


def check_si(value: str) -> bool:
    return _SI.fullmatch(value) is not None


# datatype -> (predicate, code, expected text)
FORMATS = {
    "DT": (check_dt, "HL7-DATATYPE-DT", "YYYY[MM[DD]]"),
    "DTM": (check_dtm, "HL7-DATATYPE-DTM", "YYYY[MM[DD[HH[MM[SS[.S+]]]]]][+/-ZZZZ]"),
    "TS": (check_dtm, "HL7-DATATYPE-DTM", "YYYY[MM[DD[HH[MM[SS[.S+]]]]]][+/-ZZZZ]"),
    "TM": (check_tm, "HL7-DATATYPE-TM", "HH[MM[SS[.S+]]][+/-ZZZZ]"),
    "NM": (check_nm, "HL7-DATATYPE-NM", "[+|-]digits[.digits]"),
    "SI": (check_si, "HL7-DATATYPE-SI", "a non-negative integer"),
}

_ESCAPE_BODY = (
    r"(?:[FSTREHNP]|X[0-9A-Fa-f]*|Z[^{e}]*|C[0-9A-Fa-f]{{4}}|M[0-9A-Fa-f]{{4,6}}"
    r"|\.(?:sp|br|in|ti|sk|ce|fi|nf)[+-]?\d*)"
)
_ESCAPE_RES: dict[str, re.Pattern] = {}


def escape_problem(value: str, esc: str) -> str | None:
    """The first malformed escape sequence in value (escape char esc), or None when all are well formed."""
    pat = _ESCAPE_RES.get(esc)
    if pat is None:
        e = re.escape(esc)
        pat = _ESCAPE_RES[esc] = re.compile(e + _ESCAPE_BODY.format(e=e) + e)
    stripped = pat.sub("", value)
    pos = stripped.find(esc)
    if pos < 0:
        return None
    return stripped[pos : pos + 12]


class Ctx:
    """Per-message state the checkers need: delimiters, the finding list and where we are."""

    __slots__ = (
        "comp",
        "sub",
        "rep",
        "esc",
        "out",
        "seg_index",
        "seg",
        "field",
        "rep_no",
        "standard_delimiters",
        "coding_systems",
        "field_defs",
    )

    def __init__(
        self, comp: str, sub: str, rep: str, esc: str, out: list, coding_systems: frozenset = frozenset()
    ) -> None:
        self.comp, self.sub, self.rep, self.esc, self.out = comp, sub, rep, esc, out
        self.standard_delimiters = (comp, rep, esc, sub) == ("^", "~", "\\", "&")
        self.seg_index = 0
        self.seg = ""
        self.field = 0
        self.rep_no = None
        self.coding_systems = coding_systems  # declared by the profile: accepted in table 0396
        self.field_defs: tuple = ()  # the current segment's field rules (names), set per segment

    def named(self, label: str, c: int | None) -> str:
        """How a finding names the element: the field's name, then the component's."""
        if c is None or not 0 < self.field <= len(self.field_defs):
            return label
        return f"{self.field_defs[self.field - 1].name}, {label}"

    def loc(self, comp: int | None, sub: int | None) -> Location:
        return Location(self.seg_index, self.seg, self.field, self.rep_no, comp, sub)


def _make_base(std: Standard, dt: str, table: str | None, name: str):
    fmt = FORMATS.get(dt)
    maxlen = std.base.get(dt, -1)
    if maxlen is None or maxlen <= 0 or dt in ("ID",):
        maxlen = 0
    codes = std.table(table) if dt in CODED else None
    if codes is not None and not codes:
        codes = None
    table_sev = "warning" if dt == "ID" else "info"
    if codes is not None and table == "HL70125":  # value type: any datatype of the version is one
        codes = codes | frozenset(std.base) | frozenset(std.datatypes)
    systems = codes is not None and table == coding.TABLE
    if systems:  # coding systems: the names of every version, the table's patterns, the profile's
        codes = coding.known()
    textual = dt not in FORMATS
    withdrawn = dt == "WD"
    label = name if name and name not in ("WITHDRAWN", "withdrawn") else "This element"

    def check(ctx: Ctx, value: str, c: int | None, s: int | None) -> None:
        if withdrawn:
            ctx.out.append(
                finding(
                    "HL7-WITHDRAWN",
                    ctx.loc(c, s),
                    f"{ctx.named(label, c)} is withdrawn in HL7 {std.version}; it should be empty",
                    expected="empty",
                    actual=value,
                )
            )
            return
        if fmt is not None and not fmt[0](value):
            ctx.out.append(
                finding(
                    fmt[1],
                    ctx.loc(c, s),
                    f"{ctx.named(label, c)}: {value!r} is not a valid {dt} value",
                    expected=fmt[2],
                    actual=value,
                )
            )
        if maxlen and len(value) > maxlen:
            ctx.out.append(
                finding(
                    "HL7-LENGTH-EXCEEDED",
                    ctx.loc(c, s),
                    f"{ctx.named(label, c)} is {len(value)} characters long; {dt} allows at most {maxlen}",
                    expected=f"at most {maxlen}",
                    actual=str(len(value)),
                )
            )
        if (
            codes is not None
            and value not in codes
            and not (systems and coding.accepted(value, ctx.coding_systems))
        ):
            sev, extra = table_sev, ""
            if table == "HL70211":  # charset names seen in the field (GBK ...) are read all the same
                codec = charsets.lookup(value)
                if codec:
                    sev, extra = "info", f"; it is read as {codec}"
            elif systems:
                sev, extra = coding.judge(value)
            ctx.out.append(
                finding(
                    "HL7-TABLE-VALUE",
                    ctx.loc(c, s),
                    f"{ctx.named(label, c)}: {value!r} is not a code of HL7 table {table[-4:]}{extra}",
                    expected=f"a code of table {table}",
                    actual=value,
                    severity=sev,
                )
            )
        if textual and ctx.esc and ctx.esc in value:
            bad = escape_problem(value, ctx.esc)
            if bad is not None:
                ctx.out.append(
                    finding(
                        "HL7-ESCAPE-INVALID",
                        ctx.loc(c, s),
                        f"{ctx.named(label, c)} holds a malformed escape sequence {bad!r}",
                        expected="\\F\\ \\S\\ \\T\\ \\R\\ \\E\\ \\Xhh..\\ \\H\\ \\N\\ \\.br\\ …",
                        actual=bad,
                    )
                )

    # fast paths: a clean value costs one or two comparisons; anything suspect takes the full check
    lim = maxlen or 1 << 30
    if withdrawn:
        return check
    if codes is not None:

        def coded(ctx: Ctx, value: str, c: int | None, s: int | None) -> None:
            if value not in codes or len(value) > lim or ctx.esc in value:
                check(ctx, value, c, s)

        return coded
    if fmt is not None:
        pred = fmt[0]

        def formatted(ctx: Ctx, value: str, c: int | None, s: int | None) -> None:
            if len(value) > lim or not pred(value):
                check(ctx, value, c, s)

        return formatted

    def text(ctx: Ctx, value: str, c: int | None, s: int | None) -> None:
        if len(value) > lim or ctx.esc in value:
            check(ctx, value, c, s)

    return text


_CHECKERS: dict[tuple, object] = {}


def _text_limit(std: Standard, dt: str, table: str | None) -> int:
    """For a plain textual base type: its length limit (huge when none); 0 when it needs its checker."""
    if not std.is_base(dt) or dt in FORMATS or dt == "WD" or (dt in CODED and std.table(table)):
        return 0
    maxlen = std.base.get(dt, -1)
    return maxlen if maxlen and maxlen > 0 and dt != "ID" else 1 << 30


def _undefined_part(dt: str, n: int, part_name: str, number: int, loc: Location, value: str) -> Finding:
    """A value in a component or subcomponent (part_name) past the n the datatype defines."""
    return finding(
        "HL7-COMPONENT-UNDEFINED",
        loc,
        f"{dt} defines {n} {part_name}s; {part_name} {number} has a value",
        expected=f"at most {n} {part_name}s",
        actual=value,
    )


def _missing_part(dt: str, part_name: str, number: int, label: str, within: str, loc: Location) -> Finding:
    """A required component or subcomponent left empty in a field or component (within) with a value."""
    return finding(
        "HL7-COMPONENT-REQUIRED",
        loc,
        f"{dt} {part_name} {number} ({label}) is required when the {within} has a value",
        expected="a value",
        actual="empty",
    )


def _disputed_part(dt: str, part_name: str, number: int, label: str, why: str, loc: Location) -> Finding:
    """An empty component that one source of the standard calls required and the other does not."""
    return finding(
        "HL7-SOURCE-CONFLICT",
        loc,
        f"{dt} {part_name} {number} ({label}) is empty; the sources of the standard disagree on whether "
        f"it is required ({why}), so this is not counted as an error",
        expected="a value, if required",
        actual="empty",
    )


def checker(std: Standard, dt: str, table: str | None, depth: int, name: str = ""):
    """The compiled checker for a datatype at a depth (0 field, 1 component, 2 subcomponent)."""
    key = (std.version, dt, table, depth, name)
    got = _CHECKERS.get(key)
    if got is not None:
        return got
    comps = std.datatypes.get(dt) if not std.is_base(dt) else None
    if comps is None or depth >= 2 or dt == "varies":
        if comps is not None and depth >= 2:
            first = comps[0] if comps else ("", "ST", None)
            got = _make_base(std, first[1] if std.is_base(first[1]) else "ST", first[2], name)
        elif dt in ("varies", "WD") or std.is_base(dt):
            got = _make_base(std, dt, table if std.is_base(dt) else None, name)
        else:  # a datatype the version's tables do not define: check it as text
            got = _make_base(std, "ST", None, name)
        base = got

        if depth == 0:

            def top(ctx: Ctx, value: str, c=None, s=None, _base=base) -> None:
                if dt == "WD":
                    if value.strip(ctx.comp + ctx.sub):
                        _base(ctx, value, None, None)
                    return
                if ctx.comp in value:
                    first, _, rest = value.partition(ctx.comp)
                    if rest.strip(ctx.comp + ctx.sub) and dt != "varies":
                        ctx.out.append(
                            finding(
                                "HL7-COMPONENT-UNDEFINED",
                                ctx.loc(2, None),
                                f"{name or 'The field'} is a {dt}, which has no components, but the "
                                f"value has some",
                                expected=f"one {dt} value",
                                actual=value,
                            )
                        )
                    value = first
                if value and value != '""':
                    _base(ctx, value, None, None)

            got = top
        elif depth == 1:

            def mid(ctx: Ctx, value: str, c=None, s=None, _base=base) -> None:
                if ctx.sub in value:
                    value = value.split(ctx.sub, 1)[0]
                if value and value != '""':
                    _base(ctx, value, c, None)

            got = mid
        _CHECKERS[key] = got
        return got

    elements = datatype_elements(std, dt)
    subs = [checker(std, c[1], c[2], depth + 1, el.name) for c, el in zip(comps, elements, strict=True)]
    # parts that must not be empty when the whole has a value: required (why None), or disputed (why: the
    # sources' disagreement, a HL7-SOURCE-CONFLICT warning)
    musts = tuple(
        (i, el.name, None if el.usage == "R" else el.conflict)
        for i, el in enumerate(elements)
        if el.usage == "R" or el.conflict
    )
    n = len(subs)
    # plain text parts (no table, no format) are checked inline: only a long value, an escape or a
    # nested delimiter needs the component's checker
    lims = [_text_limit(std, c[1], c[2]) for c in comps]
    # table on a coded composite (CE/CWE/CNE field bound to a table): its identifier is the code
    id_codes = std.table(table) if table and dt in ("CE", "CWE", "CNE", "CF") else None

    if depth == 0:

        def composite(ctx: Ctx, value: str, c=None, s=None) -> None:
            parts = value.split(ctx.comp)
            for i, part in enumerate(parts):
                if not part or part == '""':
                    continue
                if i >= n:
                    ctx.out.append(_undefined_part(dt, n, "component", i + 1, ctx.loc(i + 1, None), part))
                    break
                lim = lims[i]
                if lim and len(part) <= lim and ctx.esc not in part and ctx.sub not in part:
                    continue
                subs[i](ctx, part, i + 1, None)
            if musts:
                np = len(parts)
                for i, cname, why in musts:
                    if i >= np or not parts[i]:
                        loc = ctx.loc(i + 1, None)
                        ctx.out.append(
                            _missing_part(dt, "component", i + 1, cname, "field", loc)
                            if why is None
                            else _disputed_part(dt, "component", i + 1, cname, why, loc)
                        )
            if id_codes and parts[0] and parts[0] not in id_codes:
                ctx.out.append(
                    finding(
                        "HL7-TABLE-VALUE",
                        ctx.loc(1, None),
                        f"code {parts[0]!r} is not in HL7 table {table[-4:]}",
                        expected=f"a code of table {table}",
                        actual=parts[0],
                        severity="info",
                    )
                )
    else:

        def composite(ctx: Ctx, value: str, c=None, s=None) -> None:
            parts = value.split(ctx.sub)
            for i, part in enumerate(parts):
                if not part or part == '""':
                    continue
                if i >= n:
                    ctx.out.append(_undefined_part(dt, n, "subcomponent", i + 1, ctx.loc(c, i + 1), part))
                    break
                lim = lims[i]
                if lim and len(part) <= lim and ctx.esc not in part:
                    continue
                subs[i](ctx, part, c, i + 1)
            if musts:
                np = len(parts)
                for i, cname, why in musts:
                    if i >= np or not parts[i]:
                        loc = ctx.loc(c, i + 1)
                        ctx.out.append(
                            _missing_part(dt, "subcomponent", i + 1, cname, "component", loc)
                            if why is None
                            else _disputed_part(dt, "subcomponent", i + 1, cname, why, loc)
                        )

    _CHECKERS[key] = composite
    return composite
