"""Differential test against hl7apy's strict validation: same verdict, or a documented category by rule.

hl7apy is slow (≈30 ms a message here), so generated examples are bounded: 50 per property in the
default run, more under the `slow` marker.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.hl7v2.validation.validator import Result, Validator

DOC = Path(__file__).resolve().parents[3] / "docs" / "VALIDATION.md"
HL7APY_OWN = {
    "ParserError",
    "InvalidEncodingChars",
    "InvalidName",
    "OperationNotAllowed",
    "MaxChildLimitReached",
    "MaxLengthReached",
    "ValidationError",
    "ValidationWarning",
    "ChildNotFound",
    "ChildNotValid",
    "UnsupportedVersion",
    "InvalidDataType",
    "InvalidHighlightRange",
    "InvalidDateFormat",
    "InvalidDateOffset",
    "InvalidMicrosecondsPrecision",
    "MessageProfileNotFound",
    "LLPError",
    "ValueError",
}
STRUCT_CODES = {
    "HL7-STRUCT-SEGMENT-ORDER",
    "HL7-STRUCT-MISSING-SEGMENT",
    "HL7-STRUCT-TOO-MANY",
    "HL7-STRUCT-UNEXPECTED-SEGMENT",
}


def hl7apy_verdict(text: str) -> tuple[bool | None, str | None, str]:
    """(valid, exception class name, message); valid None when hl7apy crashed."""
    from hl7apy.consts import VALIDATION_LEVEL
    from hl7apy.parser import parse_message

    try:
        msg = parse_message(text, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
        msg.validate()
    except Exception as exc:  # noqa: BLE001 - every exception is a verdict (or a crash) to classify
        name = type(exc).__name__
        if name not in HL7APY_OWN and not isinstance(exc, ValueError):
            return None, name, str(exc)
        return False, name, str(exc)
    return True, None, ""


def _codes(result: Result, severity: str | None = None) -> set[str]:
    return {f.code for f in result.findings if severity is None or f.severity == severity}


def _errors(result: Result):
    return [f for f in result.findings if f.severity == "error"]


# -- the documented categories, each a rule over (hl7apy outcome, harness result, message text) ------------


def extra_elements(h, r, text):
    return (
        h[0] is False
        and h[1] in ("InvalidName", "OperationNotAllowed", "MaxChildLimitReached")
        and r.valid
        and bool(_codes(r) & {"HL7-FIELD-UNDEFINED", "HL7-COMPONENT-UNDEFINED"})
    )


def withdrawn_elements(h, r, text):
    return (
        h[0] is False
        and h[1] in ("InvalidName", "OperationNotAllowed", "MaxChildLimitReached")
        and r.valid
        and "HL7-WITHDRAWN" in _codes(r)
    )


def length_as_warning(h, r, text):
    return h[1] == "MaxLengthReached" and r.valid and "HL7-LENGTH-EXCEEDED" in _codes(r, "warning")


def obx5_by_obx2(h, r, text):
    errs = _errors(r)
    return (
        h[0] is True
        and bool(errs)
        and all(
            f.code.startswith("HL7-DATATYPE-") and f.location.segment == "OBX" and f.location.field == 5
            for f in errs
        )
    )


def segment_order(h, r, text):
    codes = _codes(r, "error")
    if h[0] is not True or not codes or not codes <= STRUCT_CODES:
        return False
    if "HL7-STRUCT-SEGMENT-ORDER" in codes:
        return True
    # a misplaced segment can also read as "missing here": then moving or swapping one segment must
    # give a message whose structure passes
    lines = [line for line in text.split("\r") if line]
    n = len(lines)
    if n > 40:
        return False

    def passes(candidate: list[str]) -> bool:
        result = VALIDATOR.validate(("\r".join(candidate) + "\r").encode())
        return not (_codes(result, "error") & STRUCT_CODES)

    for i in range(1, n):
        for j in range(1, n):
            if i == j:
                continue
            moved = lines[:i] + lines[i + 1 :]
            moved.insert(j, lines[i])
            swapped = list(lines)
            swapped[i], swapped[j] = swapped[j], swapped[i]
            if passes(moved) or passes(swapped):
                return True
    return False


def unknown_segments_dropped(h, r, text):
    errs = _errors(r)
    dropped = {f.location.segment_index for f in errs if f.code == "HL7-STRUCT-UNEXPECTED-SEGMENT"}
    return (
        h[0] is True
        and bool(dropped)
        and all(f.code in STRUCT_CODES or f.location.segment_index in dropped for f in errs)
    )


def event_structure(h, r, text):
    if (
        h[0] is not False
        or h[1] not in ("OperationNotAllowed", "InvalidName")
        or not r.valid
        or not r.structure
    ):
        return False
    parts = (r.message_type or "").split("^")
    return len(parts) == 2 and r.structure not in (f"{parts[0]}_{parts[1]}", _msh9_3(text))


def ack_code(h, r, text):
    codes = _codes(r, "error")
    return h[0] is True and codes == {"HL7-ACK-CODE"}


def truncation_character(h, r, text):
    return (
        h[1] == "InvalidEncodingChars"
        and "5 encoding chars" in h[2]
        and r.valid
        and (r.version or "") >= "2.7"
    )


def choice_groups(h, r, text):
    m = re.match(r"Missing required child (\w+)\.(\w+)", h[2]) if h[1] == "ValidationError" else None
    if m is None or not r.valid or not r.version or not r.structure:
        return False
    from harness.hl7v2 import reference

    return m.group(1) in _choice_groups(reference.load(r.version).structures.get(r.structure, ("seq", ())))


def _choice_groups(body) -> set[str]:
    found = set()
    for child in body[1]:
        if child[0] == "G":
            if child[4][0] == "choice":
                found.add(child[1])
            found |= _choice_groups(child[4])
    return found


def _structure_of(r: Result):
    from harness.hl7v2 import reference

    if not r.version or not r.structure:
        return None
    return reference.load(r.version).structures.get(r.structure)


def _group(body, name: str):
    for child in body[1]:
        if child[0] == "G":
            if child[1] == name:
                return child
            found = _group(child[4], name)
            if found is not None:
                return found
    return None


def _segment_ids(body) -> list[str]:
    out: list[str] = []
    for child in body[1]:
        out.extend([child[1]] if child[0] == "S" else _segment_ids(child[4]))
    return out


def _can_be_empty(body) -> bool:
    kids = body[1]
    if body[0] == "choice":
        return any(c[2] == 0 or (c[0] == "G" and _can_be_empty(c[4])) for c in kids)
    return all(c[2] == 0 or (c[0] == "G" and _can_be_empty(c[4])) for c in kids)


def _missing_child(h) -> str | None:
    m = re.match(r"Missing required child (\w+)\.(\w+)", h[2]) if h[1] == "ValidationError" else None
    if m:
        return m.group(2)
    m = re.match(r"Cannot add <Segment (\w+)>", h[2]) if h[1] == "MaxChildLimitReached" else None
    return m.group(1) if m else None


def ambiguous_placement(h, r, text):
    body = _structure_of(r)
    if body is not None and h[0] is True:  # hl7apy counts a segment id the structure names twice once
        errs = _errors(r)
        twice = {s for s in _segment_ids(body) if _segment_ids(body).count(s) > 1}
        return bool(errs) and all(f.code in STRUCT_CODES and f.location.segment in twice for f in errs)
    missing = _missing_child(h)
    if body is None or missing is None or not r.valid:
        return False
    group = _group(body, missing)
    wanted = set(_segment_ids(group[4])) if group is not None else {missing}
    everywhere = _segment_ids(body)
    present = {line[:3] for line in text.split("\r")}
    return any(everywhere.count(s) > 1 and s in present for s in wanted)


def empty_required_group(h, r, text):
    body = _structure_of(r)
    missing = _missing_child(h)
    if body is None or missing is None or not r.valid:
        return False
    group = _group(body, missing)
    return group is not None and _can_be_empty(group[4])


def any_segment(h, r, text):
    if not r.valid:
        return False
    if _missing_child(h) == "ANYHL7SEGMENT":
        return True
    body = _structure_of(r)  # a segment the harness matched to "any segment" that hl7apy adds again
    return h[1] == "MaxChildLimitReached" and body is not None and "*" in _segment_ids(body)


def tn_format(h, r, text):
    return h[1] == "ValueError" and "TN data" in h[2] and r.valid


def source_conflict(h, r, text):
    m = re.match(r"Missing required child (\w+)\.\1_(\d+)", h[2]) if h[1] == "ValidationError" else None
    if not m or not r.valid:
        return False
    seg, number = m.group(1), int(m.group(2))
    return any(
        f.code == "HL7-SOURCE-CONFLICT" and f.location.segment == seg and f.location.field == number
        for f in r.findings
    )


def hl7apy_crash(h, r, text):
    return h[0] is None


def charset_or_syntax(h, r, text):
    parse = any(c.startswith("HL7-PARSE-") for c in _codes(r))
    return (
        h[1] in ("ParserError", "InvalidEncodingChars", "UnicodeDecodeError", "UnicodeEncodeError")
        and (parse or not r.valid)
    ) or (parse and h[0] is not None and not r.valid)


CATEGORIES = {
    "extra-elements": extra_elements,
    "withdrawn-elements": withdrawn_elements,
    "length-as-warning": length_as_warning,
    "obx5-by-obx2": obx5_by_obx2,
    "segment-order": segment_order,
    "unknown-segments-dropped": unknown_segments_dropped,
    "event-structure": event_structure,
    "ack-code": ack_code,
    "truncation-character": truncation_character,
    "choice-groups": choice_groups,
    "ambiguous-placement": ambiguous_placement,
    "empty-required-group": empty_required_group,
    "tn-format": tn_format,
    "any-segment": any_segment,
    "source-conflict": source_conflict,
    "hl7apy-crash": hl7apy_crash,
    "charset-or-syntax": charset_or_syntax,
}


def _msh9_3(text: str) -> str:
    msh = text.split("\r", 1)[0]
    fields = msh.split(msh[3]) if len(msh) > 3 else []
    parts = fields[8].split("^") if len(fields) > 8 else []
    return parts[2] if len(parts) > 2 else ""


def classify(h, r: Result, text: str) -> str | None:
    """None when the verdicts agree; else the first documented category whose rule holds, or 'UNEXPLAINED'."""
    if h[0] is not None and h[0] == r.valid:
        return None
    for name, rule in CATEGORIES.items():
        if rule(h, r, text):
            return name
    return "UNEXPLAINED"


def explain(h, r: Result) -> str:
    return (
        f"hl7apy: {h[1]} {h[2][:160]!r}; harness: "
        + "; ".join(str(f) for f in r.findings if f.severity != "info")[:1200]
    )


VALIDATOR = Validator()


def check_one(text: str) -> str | None:
    result = VALIDATOR.validate(text.encode("utf-8"))
    verdict = hl7apy_verdict(text)
    category = classify(verdict, result, text)
    assert category != "UNEXPLAINED", f"undocumented difference:\n{text!r}\n{explain(verdict, result)}"
    return category


def test_categories_are_documented_both_ways():
    doc = DOC.read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `([a-z0-9-]+)` \|", doc, flags=re.M))
    assert documented == set(CATEGORIES)


# -- the public corpus ----------------------------------------------------------------------------------


def test_corpus_verdicts_agree_or_are_documented(corpus_dir):
    from harness.hl7v2.files import iter_messages

    folder = corpus_dir / "hl7v2"
    msgs = list(iter_messages([folder], on_error=lambda exc: None))
    assert len(msgs) > 200
    seen: dict[str | None, int] = {}
    unexplained = []
    for m in msgs:
        text = m.payload.decode("utf-8", errors="replace")
        result = VALIDATOR.validate(m.payload, m.source, m.index)
        verdict = hl7apy_verdict(text)
        category = classify(verdict, result, text)
        seen[category] = seen.get(category, 0) + 1
        if category == "UNEXPLAINED":
            unexplained.append(f"{m.source}#{m.index}: {explain(verdict, result)}")
    assert not unexplained, "\n".join(unexplained)
    assert seen[None] > len(msgs) // 2, seen  # most verdicts agree outright


# -- generated messages ---------------------------------------------------------------------------------

NAME = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=12)
DIGITS = st.text(alphabet="0123456789", min_size=1, max_size=10)


@st.composite
def dates(draw, time: bool = False) -> str:
    y = draw(st.integers(1900, 2030))
    m = draw(st.integers(1, 12))
    d = draw(st.integers(1, 28))
    text = f"{y:04d}{m:02d}{d:02d}"
    if time:
        text += f"{draw(st.integers(0, 23)):02d}{draw(st.integers(0, 59)):02d}{draw(st.integers(0, 59)):02d}"
    return text


@st.composite
def adt_a01(draw) -> list[str]:
    ts = draw(dates(time=True))
    segs = [
        f"MSH|^~\\&|{draw(NAME)}|{draw(NAME)}|{draw(NAME)}|{draw(NAME)}|{ts}||ADT^A01^ADT_A01|{draw(DIGITS)}|P|2.5",
        f"EVN|A01|{ts}",
        f"PID|1||{draw(DIGITS)}^^^{draw(NAME)}^MR||{draw(NAME)}^{draw(NAME)}||{draw(dates())}|"
        f"{draw(st.sampled_from(['M', 'F', 'U', 'O']))}",
    ]
    for i in range(draw(st.integers(0, 2))):
        segs.append(f"NK1|{i + 1}|{draw(NAME)}^{draw(NAME)}")
    segs.append(f"PV1|1|{draw(st.sampled_from(['I', 'O', 'E']))}|{draw(NAME)}^{draw(DIGITS)}")
    if draw(st.booleans()):
        segs.append(f"PV2|||{draw(NAME)}")
    for i in range(draw(st.integers(0, 2))):
        segs.append(f"OBX|{i + 1}|NM|{draw(NAME)}||{draw(st.integers(0, 999))}|mmol/L|||||F")
    for i in range(draw(st.integers(0, 2))):
        segs.append(f"AL1|{i + 1}||{draw(NAME)}")
    for i in range(draw(st.integers(0, 2))):
        segs.append(f"IN1|{i + 1}|{draw(NAME)}|{draw(DIGITS)}")
    return segs


@st.composite
def oru_r01(draw) -> list[str]:
    ts = draw(dates(time=True))
    segs = [
        f"MSH|^~\\&|{draw(NAME)}|{draw(NAME)}|{draw(NAME)}|{draw(NAME)}|{ts}||ORU^R01^ORU_R01|{draw(DIGITS)}|P|2.5",
        f"PID|1||{draw(DIGITS)}^^^{draw(NAME)}^MR||{draw(NAME)}^{draw(NAME)}||{draw(dates())}|F",
    ]
    for o in range(draw(st.integers(1, 2))):
        segs.append(f"OBR|{o + 1}|{draw(DIGITS)}||{draw(NAME)}^{draw(NAME)}|||{ts}")
        for i in range(draw(st.integers(1, 3))):
            kind = draw(st.sampled_from(["NM", "ST"]))
            value = str(draw(st.integers(0, 500))) if kind == "NM" else draw(NAME)
            segs.append(f"OBX|{i + 1}|{kind}|{draw(NAME)}^{draw(NAME)}||{value}||||||F")
    return segs


def _set_field(segs: list[str], seg: str, number: int, value: str) -> list[str]:
    out = list(segs)
    for i, s in enumerate(out):
        if s.startswith(seg + "|"):
            fields = s.split("|")
            k = number if seg != "MSH" else number - 1
            fields += [""] * (k + 1 - len(fields))
            fields[k] = value
            out[i] = "|".join(fields)
            return out
    return out


DEFECTS = ["none", "missing-segment", "bad-datatype", "table-value", "cardinality", "segment-order"]


def inject(draw, segs: list[str], defect: str) -> list[str]:
    kind = segs[0].split("|")[8]
    if defect == "missing-segment":
        victims = ["EVN", "PID", "PV1"] if kind.startswith("ADT") else ["OBR"]
        victim = draw(st.sampled_from(victims))
        return [s for s in segs if not s.startswith(victim + "|")]
    if defect == "bad-datatype":
        where = draw(
            st.sampled_from(
                [("PID", 7, "19801301"), ("PID", 1, "x1"), ("MSH", 7, "2024-03-01"), ("PID", 7, "1980010")]
            )
        )
        return _set_field(segs, *where)
    if defect == "table-value":
        return _set_field(segs, "PID", 8, draw(st.sampled_from(["Q", "X", "Z"])))
    if defect == "cardinality":
        how = draw(st.sampled_from(["dup-pid", "rep-sex"]))
        if how == "dup-pid":
            i = next(i for i, s in enumerate(segs) if s.startswith("PID|"))
            return segs[: i + 1] + [segs[i]] + segs[i + 1 :]
        return _set_field(segs, "PID", 8, "M~F")
    if defect == "segment-order":
        if kind.startswith("ADT"):
            i = next(i for i, s in enumerate(segs) if s.startswith("PID|"))
            j = next(i for i, s in enumerate(segs) if s.startswith("PV1|"))
            segs = list(segs)
            segs[i], segs[j] = segs[j], segs[i]
            return segs
        i = next(i for i, s in enumerate(segs) if s.startswith("OBR|"))
        j = next(i for i, s in enumerate(segs) if s.startswith("OBX|"))
        segs = list(segs)
        segs[i], segs[j] = segs[j], segs[i]
        return segs
    return segs


@st.composite
def messages(draw) -> tuple[str, str]:
    segs = draw(st.one_of(adt_a01(), oru_r01()))
    defect = draw(st.sampled_from(DEFECTS))
    return "\r".join(inject(draw, segs, defect)) + "\r", defect


def _expect(text: str, defect: str) -> None:
    result = VALIDATOR.validate(text.encode())
    if defect == "none":
        assert result.valid, [str(f) for f in result.findings]
    elif defect == "table-value":
        assert result.valid and "HL7-TABLE-VALUE" in _codes(result)
    else:
        assert not result.valid, (defect, text)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages())
def test_generated_messages_agree_with_hl7apy(case):
    text, defect = case
    _expect(text, defect)
    check_one(text)


@pytest.mark.slow
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages())
def test_generated_messages_agree_with_hl7apy_many(case):
    text, defect = case
    _expect(text, defect)
    check_one(text)


def test_known_differences_are_classified():
    head = "MSH|^~\\&|A|B|C|D|20240301083000||ADT^A01^ADT_A01|M1|P|2.5\r"
    body = "EVN|A01|20240301083000\rPID|1||P1^^^H^MR||ZHANG^SAN||19800101|M\rPV1|1|I\r"
    assert check_one(head + body) is None
    assert check_one(head + body.replace("PV1|1|I\r", "") + "PV1|1|I\r") is None
    assert (
        check_one(head + "EVN|A01|20240301083000\rPV1|1|I\rPID|1||P1^^^H^MR||ZHANG^SAN||19800101|M\r")
        == "segment-order"
    )
    assert check_one(head + body + "OBR|1\r") == "unknown-segments-dropped"
    assert check_one(head.replace("ADT^A01^ADT_A01", "ADT^A04") + body) == "event-structure"
    assert check_one(head + body + "OBX|1|NM|X||abc||||||F\r") == "obx5-by-obx2"
    ack = "MSH|^~\\&|HC|H|HIS|H|20240301||ACK^A01^ACK|A1|P|2.5\rMSA|XX|M1\r"
    assert check_one(ack) == "ack-code"
    assert check_one(head + body.replace("PV1|1|I", "PV1|1|I|" + "|" * 60 + "extra")) == "extra-elements"
    orm = head.replace("ADT^A01^ADT_A01", "ORM^O01^ORM_O01") + "PID|1||P1^^^H^MR||ZHANG^SAN||19800101|M\r"
    assert check_one(orm + "ORC|NW|O1\rOBR|1|O1||GLU^Glucose^L\r") == "choice-groups"
    assert check_one(orm + "ORC|NW|O1\rRXO|X^Y^L|1\r") == "choice-groups"


# -- the smallest valid message of every structure of a version -------------------------------------------

SIMPLE = {
    "ST": "X",
    "TX": "X",
    "FT": "X",
    "GTS": "X",
    "varies": "X",
    "NM": "1",
    "SI": "1",
    "DT": "20240101",
    "DTM": "20240101",
    "TS": "20240101",
    "TM": "1200",
    "TN": "(555)555-1234",
}


def _value(std, dt: str, table: str | None, depth: int = 0) -> str:
    if dt in ("ID", "IS"):
        codes = std.table(table)
        return sorted(codes)[0] if codes else "X"
    if dt in SIMPLE:
        return SIMPLE[dt]
    comps = std.datatypes.get(dt)
    if not comps or depth >= 2:
        return "X"
    parts = [_value(std, c[1], c[2], depth + 1) if i == 0 or c[3] >= 1 else "" for i, c in enumerate(comps)]
    while len(parts) > 1 and not parts[-1]:
        parts.pop()
    return ("^" if depth == 0 else "&").join(parts)


def _smallest(body) -> list[str]:
    kind, children = body
    out: list[str] = []
    for child in children[:1] if kind == "choice" else children:
        if child[2] >= 1:
            part = [("NTE" if child[1] == "*" else child[1])] if child[0] == "S" else _smallest(child[4])
            out.extend(part * child[2])
    return out


def smallest_message(version: str, name: str) -> str:
    from harness.hl7v2 import reference

    std = reference.load(version)
    mtype, _, event = name.partition("_")
    lines = [f"MSH|^~\\&|A|B|C|D|20240301083000||{mtype}^{event}^{name}|M1|P|{version}"]
    for seg in _smallest(std.structures[name])[1:]:
        fields = [seg] + [
            _value(std, dt, table) if lo >= 1 else "" for _, dt, lo, _, table in std.segments.get(seg, ())
        ]
        while len(fields) > 1 and not fields[-1]:
            fields.pop()
        lines.append("|".join(fields))
    return "\r".join(lines) + "\r"


def _structures(version: str) -> list[str]:
    from harness.hl7v2 import reference

    # template structures (QBP_Qnn, RSP_Znn ...) and event-less ones (QRY) name no real message
    return [
        n
        for n in sorted(reference.load(version).structures)
        if "_" in n and not n.endswith(("nn", "NN")) and n.startswith(n.split("_")[0])
    ]


@pytest.mark.parametrize("version", ["2.5", "2.7"])
def test_smallest_message_of_every_structure(version):
    for name in _structures(version):
        text = smallest_message(version, name)
        assert VALIDATOR.validate(text.encode()).valid, (name, text)
        check_one(text)


@pytest.mark.slow
@pytest.mark.parametrize("version", ["2.2", "2.3", "2.3.1", "2.4", "2.5.1", "2.6", "2.8", "2.8.1", "2.8.2"])
def test_smallest_message_of_every_structure_all_versions(version):
    for name in _structures(version):
        check_one(smallest_message(version, name))


@st.composite
def mutated_smallest(draw) -> str:
    version = draw(st.sampled_from(["2.3.1", "2.5", "2.5.1", "2.7"]))
    name = draw(st.sampled_from(_structures(version)))
    lines = smallest_message(version, name).rstrip("\r").split("\r")
    kind = draw(st.sampled_from(["drop", "swap", "dup", "bad-value"]))
    if len(lines) > 2:
        i = draw(st.integers(1, len(lines) - 1))
        if kind == "drop":
            del lines[i]
        elif kind == "dup":
            lines.insert(i, lines[i])
        elif kind == "swap":
            j = draw(st.integers(1, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        else:
            fields = lines[i].split("|")
            if len(fields) > 1:
                fields[draw(st.integers(1, len(fields) - 1))] = draw(
                    st.sampled_from(["x1", "2024-01-01", "1.2.3"])
                )
                lines[i] = "|".join(fields)
    return "\r".join(lines) + "\r"


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_smallest())
def test_mutated_structures_agree_with_hl7apy(text):
    check_one(text)


@pytest.mark.slow
@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_smallest())
def test_mutated_structures_agree_with_hl7apy_many(text):
    check_one(text)
