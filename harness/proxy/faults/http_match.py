"""Content conditions of HTTP fault rules: `method`, `path`, `status`, `header`, `json`, `xpath`, `meta`.

Registered in `rules.CONDITIONS["http"]`, so HTTP rules share the MLLP rules' gating (probability,
every_nth, first_n, limit, seed), ids and admin API. Each condition reads the `HttpView` the proxy
passes as the message's metadata; `json` and `xpath` parse the body once per message (shared by every
rule), XML only through harness.safexml.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Mapping
from typing import Any

from harness.proxy.faults.http_fields import check_name
from harness.proxy.faults.params import RuleError
from harness.proxy.faults.rules import CONDITIONS, Condition, Subject, ValueTest, value_matcher

_METHOD = re.compile(r"^[A-Z]+$")


def _text(value: Any) -> str | None:
    """A JSON or metadata value as the text a rule compares against (numbers as written in JSON)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _view(subject: Subject) -> Any:
    return subject.meta


class Method(Condition):
    """`"POST"` or a list of methods."""

    def __init__(self, spec: Any, where: str) -> None:
        items = spec if isinstance(spec, list) else [spec]
        if not items:
            raise RuleError(where, "an empty list matches nothing")
        methods = set()
        for i, item in enumerate(items):
            if not isinstance(item, str) or not _METHOD.match(item.upper()):
                raise RuleError(
                    f"{where}[{i}]" if isinstance(spec, list) else where, f"not a method: {item!r}"
                )
            methods.add(item.upper())
        self.methods = frozenset(methods)

    def test(self, subject: Subject) -> bool:
        view = _view(subject)
        method = view.method if view.request is None else view.request.method
        return method in self.methods


class PathCondition(Condition):
    """`"/fhir/Patient*"` (glob over the path, query string excluded unless the pattern has `?`),
    `"re:REGEX"` (searched in the whole target), or a list of these."""

    def __init__(self, spec: Any, where: str) -> None:
        items = spec if isinstance(spec, list) else [spec]
        if not items:
            raise RuleError(where, "an empty list matches nothing")
        self.tests: list[tuple[bool, ValueTest]] = []
        for i, item in enumerate(items):
            at = f"{where}[{i}]" if isinstance(spec, list) else where
            if not isinstance(item, str) or not item:
                raise RuleError(at, f"expected a path, a glob or 're:REGEX', got {item!r}")
            if item.startswith("re:"):
                self.tests.append((True, value_matcher(item, at)))
            else:
                regex = re.compile(fnmatch.translate(item))
                self.tests.append(
                    ("?" in item, lambda v, regex=regex: v is not None and bool(regex.match(v)))
                )

    def test(self, subject: Subject) -> bool:
        view = _view(subject)
        target = view.path if view.request is None else view.request.path
        bare = target.partition("?")[0]
        return any(test(target if whole else bare) for whole, test in self.tests)


class Status(Condition):
    """Response status: `503`, `"5*"`, `"re:^4"` or a list."""

    def __init__(self, spec: Any, where: str) -> None:
        items = spec if isinstance(spec, list) else [spec]
        self.tests: list[ValueTest] = []
        for i, item in enumerate(items):
            at = f"{where}[{i}]" if isinstance(spec, list) else where
            if isinstance(item, bool) or not isinstance(item, (int, str)):
                raise RuleError(at, f"expected a status such as 503, '5*' or 're:^4', got {item!r}")
            text = str(item)
            if "*" in text or "?" in text:
                regex = re.compile(fnmatch.translate(text))
                self.tests.append(lambda v, regex=regex: v is not None and bool(regex.match(v)))
            else:
                self.tests.append(value_matcher(text, at))

    def test(self, subject: Subject) -> bool:
        status = _view(subject).status
        value = str(status) if status is not None else None
        return any(test(value) for test in self.tests)


class _Pairs(Condition):
    """A JSON object of key -> value spec (every pair must match)."""

    what = "key"

    def __init__(self, spec: Any, where: str) -> None:
        if not isinstance(spec, Mapping) or not spec:
            raise RuleError(where, f"expected a JSON object of {self.what} -> value")
        self.tests: list[tuple[Any, ValueTest]] = []
        for key, value in spec.items():
            if not isinstance(key, str) or not key:
                raise RuleError(where, f"keys are {self.what}s, got {key!r}")
            self.tests.append((self.compile(key, f"{where}.{key}"), value_matcher(value, f"{where}.{key}")))

    def compile(self, key: str, where: str) -> Any:
        return key


class Header(_Pairs):
    """`{"Content-Type": "re:json", "SOAPAction": "..."}`: header values (names case-insensitive)."""

    what = "header name"

    def compile(self, key: str, where: str) -> Any:
        return check_name(key, where)

    def test(self, subject: Subject) -> bool:
        view = _view(subject)
        return all(test(view.header(name)) for name, test in self.tests)


_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def json_path(path: str, where: str) -> tuple[str | int, ...]:
    """`input.data.mdtrt_id`, `entry[0].resource.resourceType`, `$.infno` -> steps."""
    text = path[2:] if path.startswith("$.") else path
    steps: list[str | int] = []
    pos = 0
    while pos < len(text):
        if text[pos] == ".":
            pos += 1
            continue
        m = _STEP.match(text, pos)
        if not m:
            raise RuleError(
                where, f"not a JSON path such as 'input.data.psn_no' or 'entry[0].resource': {path!r}"
            )
        steps.append(m.group(1) if m.group(1) is not None else int(m.group(2)))
        pos = m.end()
    if not steps:
        raise RuleError(where, "empty JSON path")
    return tuple(steps)


def json_get(doc: Any, steps: tuple[str | int, ...]) -> Any:
    for step in steps:
        if isinstance(step, int):
            if not isinstance(doc, list) or step >= len(doc):
                return None
            doc = doc[step]
        else:
            if not isinstance(doc, dict):
                return None
            doc = doc.get(step)
        if doc is None:
            return None
    return doc


class JsonPaths(_Pairs):
    """`{"infno": "2207", "input.data.mdtrt_id": "re:^M"}`: values in the JSON body."""

    what = "JSON path"
    cost = 5

    def compile(self, key: str, where: str) -> Any:
        return json_path(key, where)

    def test(self, subject: Subject) -> bool:
        doc = _view(subject).json()
        if doc is None:
            return False
        return all(test(_text(json_get(doc, steps))) for steps, test in self.tests)


class XPaths(_Pairs):
    """`{"//*[local-name()='action']": "PatientInfoRegister"}`: XPath results in the XML body.

    The first node's text (or the string/number result) is compared; the body is parsed by
    harness.safexml, so a DTD or entity makes the condition false instead of being resolved.
    """

    what = "XPath"
    cost = 5

    def compile(self, key: str, where: str) -> Any:
        from lxml import etree

        try:
            return etree.XPath(key)
        except etree.XPathSyntaxError as exc:
            raise RuleError(where, f"bad XPath: {exc}") from None

    def test(self, subject: Subject) -> bool:
        root = _view(subject).xml()
        if root is None:
            return False
        for xpath, test in self.tests:
            try:
                result = xpath(root)
            except Exception:  # noqa: BLE001 - an XPath error on this document: no match
                return False
            if not test(_xpath_text(result)):
                return False
        return True


def _xpath_text(result: Any) -> str | None:
    if isinstance(result, list):
        if not result:
            return None
        result = result[0]
    if result is None:
        return None
    if isinstance(result, bool):
        return "true" if result else "false"
    if isinstance(result, float):
        return str(int(result)) if result.is_integer() else str(result)
    if isinstance(result, str):
        return str(result)
    if hasattr(result, "itertext"):
        return "".join(result.itertext()).strip()
    return str(result)


class MetaKeys(_Pairs):
    """`{"infno": "2207", "interaction": "create"}`: the kind codec's metadata."""

    what = "metadata key"

    def test(self, subject: Subject) -> bool:
        meta = _view(subject).meta
        return all(test(_text(meta.get(key))) for key, test in self.tests)


CONDITIONS["http"] = {
    "method": Method,
    "path": PathCondition,
    "status": Status,
    "header": Header,
    "meta": MetaKeys,
    "json": JsonPaths,
    "xpath": XPaths,
}
