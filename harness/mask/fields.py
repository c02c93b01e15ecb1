"""JSON documents masked by field name: the medical-insurance (医保) envelope and the CDC report-card rows.

A rule's target is a field name (`psn_name`), matched at any depth (request `input.data.psn_name` and
response `output.baseinfo.psn_name` alike), or a dotted path from the document's root with `*` for any
one key (`output.*.certno`); lists are looked through. A matched value that is an object or a list has
every string inside it masked the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from harness.mask.jsontext import Document, Path, decode_bytes
from harness.mask.policy import Rule
from harness.mask.sweep import Replacements

if TYPE_CHECKING:  # annotations only: importing the masker at run time would be a cycle
    from harness.mask.masker import Pass


class MaskedJson:
    """A JSON document with its edits, rendered back in its own charset (or as text)."""

    def __init__(self, doc: Document, codec: str | None) -> None:
        self.doc = doc
        self.codec = codec

    def render(self, replacements: Replacements) -> bytes | str:
        text = self.doc.render(replacements)
        return text if self.codec is None else text.encode(self.codec)


def load(data: bytes | str, charset: str | None) -> tuple[Document, str | None]:
    if isinstance(data, str):
        return Document(data), None
    text, codec = decode_bytes(data, charset)
    return Document(text), codec


def _keys(path: Path) -> tuple[str, ...]:
    return tuple(p for p in path if isinstance(p, str))


def rule_for(rules: Sequence[Rule], path: Path) -> Rule | None:
    """The rule for a value at path: a dotted rule matching the whole key path, else a field-name rule
    matching the last key (or any enclosing key: a rule on an object covers what is inside)."""
    keys = _keys(path)
    for rule in rules:
        if "." in rule.target:
            parts = rule.target.split(".")
            for end in range(len(keys), 0, -1):
                if end == len(parts) and all(
                    fnmatchcase(k, p) for k, p in zip(keys[:end], parts, strict=True)
                ):
                    return rule
    for key in reversed(keys):
        for rule in rules:
            if "." not in rule.target and (rule.target == key or rule.target == "*"):
                return rule
    return None


def mask(data: bytes | str, pass_: Pass, rules: Sequence[Rule], charset: str | None = None) -> MaskedJson:
    doc, codec = load(data, charset)
    mask_document(doc, pass_, rules)
    return MaskedJson(doc, codec)


def mask_document(doc: Document, pass_: Pass, rules: Sequence[Rule]) -> None:
    matched: list[tuple[Path, Any, Rule]] = []
    for path, value in doc.leaves():
        if value is None or isinstance(value, bool):
            continue
        rule = rule_for(rules, path)
        if rule is not None and rule.how != "keep":
            matched.append((path, value, rule))
    ids = [str(v) for _, v, r in matched if r.how == "id"]
    names = [str(v) for _, v, r in matched if r.how == "name"]
    pass_.patient = pass_.choose_patient(ids, names)
    for path, value, rule in matched:
        text = value if isinstance(value, str) else _number_text(value)
        if text is None:
            continue
        masked = pass_.value(rule.how, text, precision=rule.precision)
        if masked != text:
            doc.set(path, masked)


def _number_text(value: Any) -> str | None:
    """Whole numbers mask as their digits (a phone number sent as a JSON number); others are not ids."""
    if isinstance(value, int):
        return str(value)
    return None
