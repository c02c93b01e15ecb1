"""FHIR JSON masked by element path per resource type, datatype-aware.

Rules name `ResourceType.element[.element...]` (or `*.` for any resource type). Every resource in the
document is visited, wherever it sits (a Bundle's entries, `contained`, a Parameters' `resource`), and a
rule's path is followed from that resource, through lists, without entering a nested resource (that one
is visited on its own). What a rule finds is masked by its datatype: a HumanName's family, given and
text as one name; a ContactPoint's value as a phone or e-mail by its system; an Address's lines and
text (city, district, state, postal code and country kept); an Identifier's value; a plain string as the
rule says. Each Patient (RelatedPerson, Person) moves its dates by its own offset, keyed by its 身份证
identifier when it has one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from harness.mask import fields
from harness.mask.jsontext import Document, Path, walk
from harness.mask.policy import Rule

if TYPE_CHECKING:  # annotations only: importing the masker at run time would be a cycle
    from harness.mask.masker import Pass

PERSON_TYPES = frozenset({"Patient", "RelatedPerson", "Person"})
ADDRESS_MASKED = ("line", "text")
SEARCH_PARAMS = {
    "identifier": "id", "name": "name", "family": "name", "given": "name", "phonetic": "name",
    "phone": "phone", "telecom": "phone", "email": "email", "address": "address", "birthdate": "date",
}  # fmt: skip
"""FHIR search parameters (Patient, RelatedPerson, Person) whose values identify a person."""


def mask(
    data: bytes | str, pass_: Pass, rules: Sequence[Rule], charset: str | None = None
) -> fields.MaskedJson:
    doc, codec = fields.load(data, charset)
    mask_document(doc, pass_, rules)
    return fields.MaskedJson(doc, codec)


def mask_document(doc: Document, pass_: Pass, rules: Sequence[Rule]) -> None:
    parsed = [(r, r.target.split(".")) for r in rules if r.how != "keep"]
    for path, resource in _resources(doc.data, ()):
        rtype = resource.get("resourceType")
        pass_.patient = _patient_key(pass_, resource) if rtype in PERSON_TYPES else None
        for rule, (head, *steps) in parsed:
            if head not in ("*", rtype):
                continue
            for where, value in _follow(resource, path, steps):
                _apply(doc, pass_, rule, where, value)
    pass_.patient = None


def _resources(value: Any, path: Path) -> Iterator[tuple[Path, dict]]:
    if isinstance(value, dict):
        if isinstance(value.get("resourceType"), str):
            yield path, value
        for key, item in value.items():
            yield from _resources(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _resources(item, (*path, i))


def _follow(value: Any, path: Path, steps: list[str]) -> Iterator[tuple[Path, Any]]:
    if isinstance(value, list):
        for i, item in enumerate(value):
            yield from _follow(item, (*path, i), steps)
        return
    if not steps:
        yield path, value
        return
    if isinstance(value, dict):
        key = steps[0]
        if key in value and not (isinstance(value[key], dict) and "resourceType" in value[key]):
            yield from _follow(value[key], (*path, key), steps[1:])


def _patient_key(pass_: Pass, resource: dict) -> str | None:
    ids = [i.get("value") for i in _list(resource.get("identifier")) if isinstance(i, dict)]
    names = []
    for name in _list(resource.get("name")):
        if isinstance(name, dict):
            names.append(
                name.get("text") or "".join([name.get("family") or "", *_strings(name.get("given"))])
            )
    return pass_.choose_patient([i for i in ids if isinstance(i, str)], [n for n in names if n])


def _list(value: Any) -> list:
    return value if isinstance(value, list) else [] if value is None else [value]


def _strings(value: Any) -> list[str]:
    return [v for v in _list(value) if isinstance(v, str)]


def _apply(doc: Document, pass_: Pass, rule: Rule, path: Path, value: Any) -> None:
    how = rule.how
    if isinstance(value, str):
        masked = pass_.value(how, value, precision=rule.precision)
        if masked != value:
            doc.set(path, masked)
        return
    if not isinstance(value, dict):
        return
    if how == "name":
        _human_name(doc, pass_, path, value)
    elif how in ("phone", "email"):
        if isinstance(value.get("value"), str):
            kind = "email" if value.get("system") == "email" else how
            doc.set((*path, "value"), pass_.value(kind, value["value"]))
    elif how == "address":
        for key in ADDRESS_MASKED:
            _strings_under(doc, pass_, "address", (*path, key), value.get(key))
    elif how == "id":
        if isinstance(value.get("value"), str):
            doc.set((*path, "value"), pass_.value("id", value["value"]))
    else:
        for sub, item in walk(value):  # every string inside
            if isinstance(item, str):
                masked = pass_.value(how, item, precision=rule.precision)
                if masked != item:
                    doc.set((*path, *sub), masked)


def _strings_under(doc: Document, pass_: Pass, how: str, path: Path, value: Any) -> None:
    if isinstance(value, str):
        masked = pass_.value(how, value)
        if masked != value:
            doc.set(path, masked)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _strings_under(doc, pass_, how, (*path, i), item)


def _human_name(doc: Document, pass_: Pass, path: Path, name: dict) -> None:
    family = name.get("family") if isinstance(name.get("family"), str) else None
    given = name.get("given") if isinstance(name.get("given"), list) else []
    parts = [family or "", *[g if isinstance(g, str) else "" for g in given]]
    masked = pass_.name(parts)
    if family:
        doc.set((*path, "family"), masked[0])
    for i, g in enumerate(given):
        if isinstance(g, str) and g:
            doc.set((*path, "given", i), masked[i + 1])
    if isinstance(name.get("text"), str) and name["text"]:
        doc.set((*path, "text"), pass_.name([name["text"]])[0])


def mask_query(target: str, pass_: Pass) -> str:
    """A request target with the values of person-identifying search parameters masked
    (`identifier=system|value` keeps its system); everything else of the target as it was."""
    path, sep, query = target.partition("?")
    if not sep or not query:
        return target
    pairs = query.split("&")
    ids = []
    for pair in pairs:
        name, eq, value = pair.partition("=")
        if eq and name.split(":")[0] == "identifier":
            ids.append(unquote(value).rpartition("|")[2])
    pass_.patient = pass_.choose_patient(ids)
    out = []
    for pair in pairs:
        name, eq, value = pair.partition("=")
        how = SEARCH_PARAMS.get(name.split(":")[0].split(".")[-1]) if eq else None
        if how is None:
            out.append(pair)
            continue
        masked_values = []
        for item in unquote(value.replace("+", " ")).split(","):
            system, bar, code = item.rpartition("|") if how == "id" else ("", "", item)
            prefix = ""
            if how == "date" and code[:2] in ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"):
                prefix, code = code[:2], code[2:]
            masked_values.append(system + bar + prefix + pass_.value(how, code))
        out.append(name + eq + quote(",".join(masked_values), safe=":|,/@"))
    pass_.patient = None
    return path + sep + "&".join(out)
