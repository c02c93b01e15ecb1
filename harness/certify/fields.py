"""Invalid and varied values for JSON fields described the way specs/FORMAT.md describes them.

A field rule is `{type, max, decimals, required, required_when, code, values, pattern, fields}` (medins
transactions, CDC tables). `slots` walks an example request alongside its rules and lists every field it
can change (the first item of a list stands for the list). For each slot, `mutations` gives one class of
invalid value per constraint the rule states, each as a hypothesis strategy whose simplest draw is the
most readable bad value (a missing field, `"abc"` for a number, one character too many, `Z` outside a
code set, `2026/01/05` for a date); `variation` gives valid values to try in optional fields.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

MISSING = object()
"""A mutation's value meaning: remove the field."""
CODE_ALPHABET = "ZQXJ9"


@dataclass(slots=True)
class Slot:
    path: tuple[str | int, ...]
    shown: str
    rule: dict[str, Any]
    label: str
    value: Any
    """The example's value (MISSING when the example leaves the field out)."""
    parent: dict[str, Any]


@dataclass(slots=True)
class Mutation:
    check: str
    title: Callable[[Any], str]
    """The case's title for a drawn value."""
    constraint: str
    values: st.SearchStrategy


def slots(
    example: dict[str, Any], rules: dict[str, dict], *, prefix: str = "", label: str = "", path: tuple = ()
) -> list[Slot]:
    """Every field of `rules` at this level of `example`, and below it where the example has objects."""
    out: list[Slot] = []
    for name, rule in rules.items():
        if not isinstance(rule, dict):
            continue
        own = rule.get("label") if isinstance(rule.get("label"), str) else label
        shown = f"{prefix}.{name}" if prefix else name
        value = example.get(name, MISSING) if isinstance(example, dict) else MISSING
        out.append(Slot((*path, name), shown, rule, own, value, example))
        kind = rule.get("type", "str")
        fields = rule.get("fields")
        if not isinstance(fields, dict):
            continue
        if kind == "object" and isinstance(value, dict):
            out.extend(slots(value, fields, prefix=shown, label=own, path=(*path, name)))
        elif kind == "list" and isinstance(value, list) and value and isinstance(value[0], dict):
            out.extend(slots(value[0], fields, prefix=f"{shown}[0]", label=own, path=(*path, name, 0)))
        elif kind == "list" and isinstance(value, dict) and rule.get("one_or_many"):
            out.extend(slots(value, fields, prefix=shown, label=own, path=(*path, name)))
    return out


def put(document: Any, path: tuple, value: Any) -> Any:
    """A copy of document with the value at path replaced (or removed when value is MISSING)."""
    out = copy.deepcopy(document)
    node = out
    for part in path[:-1]:
        node = node[part]
    if value is MISSING:
        node.pop(path[-1], None)
    else:
        node[path[-1]] = value
    return out


def required(slot: Slot) -> bool:
    rule = slot.rule
    if rule.get("required"):
        return True
    when = rule.get("required_when")
    if not isinstance(when, dict) or not when:
        return False
    for name, wanted in when.items():
        values = wanted if isinstance(wanted, list) else [wanted]
        if str(slot.parent.get(name)) not in [str(v) for v in values]:
            return False
    return True


def _fact(slot: Slot, what: str) -> str:
    return f"{slot.shown} {what}" + (f" ({slot.label})" if slot.label else "")


def mutations(slot: Slot, codes: Callable[[str], dict[str, str]] | None = None) -> list[Mutation]:
    """One class of invalid value per constraint the slot's rule states (none for absent fields)."""
    rule, kind = slot.rule, slot.rule.get("type", "str")
    out: list[Mutation] = []
    if slot.value is MISSING:
        return out
    if required(slot):
        why = "required" if rule.get("required") else f"required when {rule['required_when']}"
        out.append(
            Mutation("required", lambda v: f"{slot.shown} removed", _fact(slot, why), st.just(MISSING))
        )
    if kind in ("num", "int"):
        out.append(
            Mutation(
                "type",
                lambda v: f"{slot.shown} = {v!r} (not a number)",
                _fact(slot, f"is a {kind}"),
                st.sampled_from(["abc", "12a", "一百"]),
            )
        )
    elif kind in ("str", "date", "datetime"):
        out.append(
            Mutation(
                "type",
                lambda v: f"{slot.shown} = {_short(v)} (an object, not a single value)",
                _fact(slot, f"is a single {kind} value"),
                st.builds(lambda x: {"value": x}, st.sampled_from(["1", "x"])),
            )
        )
    elif kind in ("object", "list") and not (kind == "list" and rule.get("one_or_many") and False):
        out.append(
            Mutation(
                "type",
                lambda v: f"{slot.shown} = {v!r} (not {'a list' if kind == 'list' else 'an object'})",
                _fact(slot, f"is {'a list of objects' if kind == 'list' else 'an object'}"),
                st.sampled_from(["x", "1"]),
            )
        )
    if kind == "str" and isinstance(rule.get("max"), int) and "code" not in rule and "values" not in rule:
        limit = rule["max"]
        out.append(
            Mutation(
                "length",
                lambda v: f"{slot.shown} = {len(v)} characters (max {limit})",
                _fact(slot, f"at most {limit} characters"),
                st.text(alphabet="0123456789ABCDEF", min_size=limit + 1, max_size=limit + 8),
            )
        )
    if kind == "num" and isinstance(rule.get("max"), int):
        digits = rule["max"] - int(rule.get("decimals", 0))
        if 0 < digits < 30:
            out.append(
                Mutation(
                    "length",
                    lambda v: f"{slot.shown} = {v} ({len(str(v))} whole digits; at most {digits})",
                    _fact(slot, f"at most {rule['max']},{rule.get('decimals', 0)} digits"),
                    st.integers(min_value=0, max_value=8).map(lambda k: int("1" + "0" * (digits + k))),
                )
            )
    if kind == "str" and rule.get("code") and codes is not None:
        known = set(codes(rule["code"]))
        limit = rule.get("max") or 6
        bad = st.text(alphabet=CODE_ALPHABET, min_size=1, max_size=max(1, min(limit, 6))).filter(
            lambda v: v not in known
        )
        out.append(
            Mutation(
                "code",
                lambda v: f"{slot.shown} = {v!r} (not a {rule['code']} code)",
                _fact(slot, f"is a {rule['code']} code"),
                bad,
            )
        )
    elif kind == "str" and rule.get("values"):
        allowed = {str(v) for v in rule["values"]}
        out.append(
            Mutation(
                "code",
                lambda v: f"{slot.shown} = {v!r} (not one of {', '.join(sorted(allowed))})",
                _fact(slot, f"is one of {', '.join(sorted(allowed))}"),
                st.text(alphabet=CODE_ALPHABET, min_size=1, max_size=4).filter(lambda v: v not in allowed),
            )
        )
    elif kind == "str" and rule.get("pattern"):
        pattern = re.compile(rule["pattern"])
        out.append(
            Mutation(
                "code",
                lambda v: f"{slot.shown} = {v!r} (does not match {pattern.pattern})",
                _fact(slot, f"matches {pattern.pattern}"),
                st.sampled_from(["-", "?", "Z-Z"]).filter(lambda v: not pattern.fullmatch(v)),
            )
        )
    if kind in ("date", "datetime"):
        out.append(
            Mutation(
                "datetime",
                lambda v: (
                    f"{slot.shown} = {v!r} (not {'yyyy-MM-dd' if kind == 'date' else 'yyyy-MM-dd HH:mm:ss'})"
                ),
                _fact(slot, "is " + ("a date yyyy-MM-dd" if kind == "date" else "yyyy-MM-dd HH:mm:ss")),
                st.sampled_from(_bad_dates(slot.value, kind)),
            )
        )
    return out


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def _bad_dates(example: Any, kind: str) -> list[str]:
    text = str(example) if isinstance(example, str) else "2026-01-05 09:30:00"
    day = text[:10] if re.match(r"\d{4}-\d{2}-\d{2}", text) else "2026-01-05"
    y, m, d = day.split("-")
    time = text[11:19] if len(text) >= 19 else "09:30:00"
    out = [f"{y}/{m}/{d}" + ("" if kind == "date" else f" {time}"), f"{d}-{m}-{y}", f"{y}-13-{d}"]
    if kind == "datetime":
        out.append(f"{day} 25:61:00")
    return out


# -- valid variation -------------------------------------------------------------------------------
def variation(slot: Slot, codes: Callable[[str], dict[str, str]] | None = None) -> st.SearchStrategy | None:
    """Valid values for an optional field the spec closes: a code of its set or one of its values.

    Other optional fields are left as the example has them: a free identifier, amount or date may be
    valid for its type and still name nothing the target knows (a visit that does not exist), which a
    target rightly refuses, so inventing them would fail good targets.
    """
    rule, kind = slot.rule, slot.rule.get("type", "str")
    if kind != "str" or required(slot) or rule.get("requires_filing"):
        return None
    if rule.get("code") and codes is not None:
        known = sorted(codes(rule["code"]))
        return st.sampled_from(known) if known else None
    if rule.get("values"):
        return st.sampled_from([str(v) for v in rule["values"]])
    return None


def varied(example: dict, slots_: list[Slot], codes=None) -> st.SearchStrategy:
    """The example with optional coded fields it leaves out filled with generated codes (`variation`).

    The simplest draw changes nothing, so the first generated case is the example itself.
    """
    choices: list[tuple[Slot, st.SearchStrategy]] = []
    for slot in slots_:
        if len(slot.path) < 2 or isinstance(slot.path[-1], int):
            continue
        if slot.value is MISSING:
            values = variation(slot, codes)
            if values is not None:
                choices.append((slot, st.one_of(st.just(MISSING), values)))
    if not choices:
        return st.just(example)

    def build(picks: list[Any]) -> dict:
        out = example
        for (slot, _), pick in zip(choices, picks, strict=True):
            if pick is not slot.value:
                out = put(out, slot.path, pick)
        return out

    return st.tuples(*(values for _, values in choices)).map(lambda picks: build(list(picks)))


def differences(example: Any, variant: Any, prefix: str = "") -> list[str]:
    """The fields a variant sets differently from its example (`input.data.med_type = '12'`)."""
    if isinstance(example, dict) and isinstance(variant, dict):
        out: list[str] = []
        for key, value in variant.items():
            where = f"{prefix}.{key}" if prefix else str(key)
            out += differences(example.get(key, MISSING), value, where)
        return out
    if isinstance(example, list) and isinstance(variant, list) and len(example) == len(variant):
        return [
            d
            for i, (a, b) in enumerate(zip(example, variant, strict=True))
            for d in differences(a, b, f"{prefix}[{i}]")
        ]
    return [] if example == variant else [f"{prefix} = {variant!r}"]
