"""Masking policies as data (`specs/masking/*.yaml`): per kind, which elements hold identifying data and
how each is replaced.

A policy file is YAML (schema in specs/masking/README.md). Every mistake is reported with the file, the
line and the key path (`specs/masking/site.yaml:14: hl7v2.elements.PID-33: unknown ...`), before
anything is masked. `load("default")` finds `specs/masking/default.yaml` in the working directory or
beside the installed package.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.datafiles import data_dir

KINDS = ("hl7v2", "fhir", "medins", "cdc", "hl7v3")
HOW = ("id", "name", "phone", "email", "address", "text", "date", "region", "redact", "keep")
"""How an element is replaced: id (a 身份证 or any identifier), name, phone (or e-mail), email,
address, text (free text), date (moved by the patient's offset), region (an admdvs code generalised to
its prefecture), redact (emptied), keep (listed to say it was considered, left as it is)."""
PRECISIONS = ("year", "month", "day")
_TOP_KEYS = ("policy", "description", "dates", "http", *KINDS)
_HL7V2_PATH = re.compile(r"^[A-Z][A-Z0-9]{2}-\d+(?:\.\d+){0,2}$")
_FHIR_PATH = re.compile(r"^(?:\*|[A-Z][A-Za-z]+)(?:\.[A-Za-z_][A-Za-z0-9_]*)+$")
_FIELD_PATH = re.compile(r"^(?:\*|[A-Za-z_][A-Za-z0-9_]*)(?:\.(?:\*|[A-Za-z_][A-Za-z0-9_]*))*$")
_HEADER = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
DEFAULT_NAMESPACES = {"v3": "urn:hl7-org:v3", "xsi": "http://www.w3.org/2001/XMLSchema-instance"}


class PolicyError(ValueError):
    """A policy that cannot be used: file, line and key path, and what is wrong."""


@dataclass(frozen=True, slots=True)
class Rule:
    target: str
    """The element: an HL7 v2 terse path, a FHIR path, a JSON field name or path, or an XPath."""
    how: str
    precision: str | None = None
    """For dates: reduce to year or month after moving them (FHIR birthDate precision)."""
    where: str = ""
    """file:line, for messages about this rule."""


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    source: str
    description: str = ""
    shift_dates: bool = True
    max_shift_days: int = 365
    rules: dict[str, tuple[Rule, ...]] = field(default_factory=dict)
    namespaces: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_NAMESPACES))
    redact_headers: frozenset[str] = frozenset()
    """Lower-case HTTP header names whose values are withheld (credentials)."""

    def for_kind(self, kind: str) -> tuple[Rule, ...]:
        return self.rules.get(kind, ())


def search_dirs() -> list[Path]:
    """Where policies named without a path are looked for: ./specs/masking, then beside the package."""
    here = Path("specs/masking")
    packaged = (data_dir("specs") / "masking").resolve()
    return [here] if here.resolve() == packaged else [here, packaged]


def resolve(name: str) -> Path:
    """A policy name (`default`) or file path to the file."""
    text = name.strip()
    if not text:
        raise PolicyError("empty policy name")
    path = Path(text)
    if "/" in text or "\\" in text or path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise PolicyError(f"masking policy {text}: no such file")
        return path
    for folder in search_dirs():
        for suffix in (".yaml", ".yml"):
            candidate = folder / f"{text}{suffix}"
            if candidate.is_file():
                return candidate
    known = sorted({p.stem for folder in search_dirs() if folder.is_dir() for p in folder.glob("*.y*ml")})
    raise PolicyError(
        f"masking policy {text!r} not found in {', '.join(str(d) for d in search_dirs())}"
        + (f"; known policies: {', '.join(known)}" if known else "")
    )


def load(name_or_path: str | Path = "default") -> Policy:
    """Read and check a policy file; raises PolicyError naming file, line and key."""
    import yaml

    path = resolve(str(name_or_path))
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise PolicyError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise PolicyError(f"{path}{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    return _Reader(path, _lines(node)).policy(data)


def _lines(node, prefix: tuple = (), out: dict | None = None) -> dict[tuple, int]:
    """Key path → 1-based line of every key and list item in the composed YAML."""
    import yaml

    out = {} if out is None else out
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            path = (*prefix, str(key.value))
            out[path] = key.start_mark.line + 1
            _lines(value, path, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            path = (*prefix, i)
            out[path] = item.start_mark.line + 1
            _lines(item, path, out)
    return out


class _Reader:
    def __init__(self, path: Path, lines: dict[tuple, int]) -> None:
        self.path = path
        self.lines = lines

    def fail(self, keys: tuple, message: str) -> PolicyError:
        line = None
        probe = keys
        while probe and line is None:
            line = self.lines.get(probe)
            probe = probe[:-1]
        where = f"{self.path}:{line}" if line else str(self.path)
        dotted = ".".join(str(k) for k in keys)
        return PolicyError(f"{where}: {dotted + ': ' if dotted else ''}{message}")

    def where(self, keys: tuple) -> str:
        line = self.lines.get(keys)
        return f"{self.path}:{line}" if line else str(self.path)

    def mapping(self, value: Any, keys: tuple, allowed: tuple[str, ...] | None = None) -> dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(keys, f"expected a mapping, got {type(value).__name__}")
        if allowed is not None:
            for key in value:
                if key not in allowed:
                    raise self.fail((*keys, str(key)), f"unknown key; known keys here: {', '.join(allowed)}")
        return value

    def policy(self, data: Any) -> Policy:
        if not isinstance(data, dict):
            raise self.fail((), "a masking policy is a mapping (policy:, dates:, hl7v2:, fhir:, ...)")
        self.mapping(data, (), _TOP_KEYS)
        name = data.get("policy", self.path.stem)
        if not isinstance(name, str) or not name.strip():
            raise self.fail(("policy",), "expected the policy's name as text")
        description = data.get("description") or ""
        if not isinstance(description, str):
            raise self.fail(("description",), "expected text")
        dates = self.mapping(data.get("dates"), ("dates",), ("shift", "max_shift_days"))
        shift = dates.get("shift", True)
        if not isinstance(shift, bool):
            raise self.fail(("dates", "shift"), f"expected true or false, got {shift!r}")
        max_days = dates.get("max_shift_days", 365)
        if isinstance(max_days, bool) or not isinstance(max_days, int) or not 1 <= max_days <= 3650:
            raise self.fail(
                ("dates", "max_shift_days"), f"expected a whole number of days 1-3650, got {max_days!r}"
            )
        http = self.mapping(data.get("http"), ("http",), ("redact_headers",))
        headers = http.get("redact_headers") or []
        if not isinstance(headers, list):
            raise self.fail(("http", "redact_headers"), "expected a list of header names")
        for i, header in enumerate(headers):
            if not isinstance(header, str) or not _HEADER.match(header):
                raise self.fail(("http", "redact_headers", i), f"not an HTTP header name: {header!r}")
        namespaces = dict(DEFAULT_NAMESPACES)
        rules: dict[str, tuple[Rule, ...]] = {}
        for kind in KINDS:
            allowed = ("elements", "namespaces") if kind == "hl7v3" else ("elements",)
            section = self.mapping(data.get(kind), (kind,), allowed)
            if kind == "hl7v3":
                extra = self.mapping(section.get("namespaces"), (kind, "namespaces"))
                for prefix, uri in extra.items():
                    if not isinstance(uri, str) or not re.match(r"^[A-Za-z_][\w.-]*$", str(prefix)):
                        raise self.fail((kind, "namespaces", str(prefix)), "expected prefix: namespace URI")
                    namespaces[str(prefix)] = uri
            elements = self.mapping(section.get("elements"), (kind, "elements"))
            rules[kind] = tuple(
                self.rule(kind, str(target), spec, (kind, "elements", str(target)), namespaces)
                for target, spec in elements.items()
            )
        return Policy(
            name=name.strip(),
            source=str(self.path),
            description=description.strip(),
            shift_dates=shift,
            max_shift_days=max_days,
            rules=rules,
            namespaces=namespaces,
            redact_headers=frozenset(h.lower() for h in headers),
        )

    def rule(self, kind: str, target: str, spec: Any, keys: tuple, namespaces: dict[str, str]) -> Rule:
        precision = None
        if isinstance(spec, dict):
            self.mapping(spec, keys, ("as", "precision"))
            how = spec.get("as")
            precision = spec.get("precision")
            if precision is not None and precision not in PRECISIONS:
                raise self.fail(
                    (*keys, "precision"), f"expected one of {', '.join(PRECISIONS)}, got {precision!r}"
                )
        else:
            how = spec
        if how not in HOW:
            raise self.fail(keys, f"unknown masking {how!r}; expected one of {', '.join(HOW)}")
        if precision is not None and how != "date":
            raise self.fail((*keys, "precision"), "only dates have a precision")
        self.target(kind, target, keys, namespaces)
        return Rule(target, how, precision, self.where(keys))

    def target(self, kind: str, target: str, keys: tuple, namespaces: dict[str, str]) -> None:
        if kind == "hl7v2":
            if "[" in target:
                raise self.fail(
                    keys, "a policy path applies to every segment and repetition: write it without [n]"
                )
            if not _HL7V2_PATH.match(target):
                raise self.fail(keys, "expected a terse path such as PID-3, PID-5.1 or NK1-2")
            if target.startswith("MSH-") and target.split(".")[0] in ("MSH-1", "MSH-2"):
                raise self.fail(keys, "MSH-1 and MSH-2 are the delimiters, not data")
        elif kind == "fhir":
            if not _FHIR_PATH.match(target):
                raise self.fail(
                    keys, "expected ResourceType.element (Patient.name, Patient.contact.telecom) or *.element"
                )
        elif kind in ("medins", "cdc"):
            if not _FIELD_PATH.match(target):
                raise self.fail(
                    keys, "expected a field name (psn_name) or a dotted path (output.baseinfo.certno)"
                )
        else:
            from lxml import etree

            try:
                etree.XPath(target, namespaces=namespaces)
            except etree.XPathSyntaxError as exc:
                raise self.fail(keys, f"not a valid XPath: {exc}") from None
