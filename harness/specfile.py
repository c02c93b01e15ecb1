"""Interface specification files under specs/: one regular, self-describing shape for every family.

Every spec file is YAML whose first key is `meta`:

    meta:
      family: medins            # medins | hl7v3 | cdc | hl7v2
      kind: transactions        # what the body holds (specs/FORMAT.md lists the kinds)
      title: ...
      format: 1
      sources: {OH: "repository @commit path ...", ...}   # every source a fact may cite
      label: M                  # default label of the file's facts
      source: OH                # default source (optional)

A fact's label is the nearest `label` going up (field -> node -> item -> meta); its source likewise.
Labels: V read in a named public source, V* read through a code-search hit, M recalled and unverified,
L inferred or sources conflict, S the simulator's own invented data (not a fact about the interface).
A V or V* fact must resolve to a declared source. HL7 v2 interface profiles are read by the validator,
which refuses unknown keys, so they state `Sources:` in their leading comment block instead.

The loader never guesses: a malformed file raises SpecError naming the file and the key path.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.datafiles import data_dir

SPECS = data_dir("specs")
FAMILIES = ("medins", "hl7v3", "cdc", "hl7v2", "fhir")
LABELS = ("V", "V*", "M", "L", "S")
FORMAT = 1


class SpecError(ValueError):
    """A spec file that cannot be used; the message names the file, the line and the key path.

    Whoever raises it writes `FILE: KEY.PATH: problem`; the line of the deepest key of that path that is
    in the file is added here (`FILE:LINE: KEY.PATH: problem`), so every family's loader reports lines
    without tracking them.
    """

    def __init__(self, message: str) -> None:
        super().__init__(_with_line(message))


_LOCATED = re.compile(r"^(?P<file>[^\n:]+?\.ya?ml): (?P<key>[^\s:]+)[\s:]")


def _with_line(message: str) -> str:
    m = _LOCATED.match(message)
    if not m:
        return message
    try:
        line = line_of(Path(m.group("file")), m.group("key"))
    except Exception:  # noqa: BLE001 - a line is a courtesy; the message stands without it
        return message
    if line is None:
        return message
    return f"{m.group('file')}:{line}: {message[len(m.group('file')) + 2 :]}"


def line_of(path: Path, keypath: str) -> int | None:
    """The 1-based line of the deepest key of `keypath` (`a.b[2].c`) found in the YAML file."""
    node = yaml.compose(path.read_text(encoding="utf-8"), Loader=_Loader)  # noqa: S506 - a safe loader
    line = None
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", keypath):
        if isinstance(node, yaml.SequenceNode) and part.startswith("["):
            index = int(part[1:-1])
            if index >= len(node.value):
                break
            node = node.value[index]
            line = node.start_mark.line + 1
        elif isinstance(node, yaml.MappingNode):
            found = next(((k, v) for k, v in node.value if str(k.value) == part), None)
            if found is None:
                break
            line, node = found[0].start_mark.line + 1, found[1]
        else:
            break
    return line


@dataclass(slots=True)
class SpecFile:
    path: Path
    meta: dict[str, Any]
    body: dict[str, Any]

    @property
    def family(self) -> str:
        return self.meta["family"]

    @property
    def kind(self) -> str:
        return self.meta["kind"]


_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: the specs are large


def read_yaml(path: Path) -> Any:
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # noqa: S506 - a safe loader
    except OSError as exc:
        raise SpecError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise SpecError(f"{path}:{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None


def load(path: str | Path, *, family: str | None = None, kind: str | None = None) -> SpecFile:
    """Read one spec file and check its header (and, when given, its family and kind)."""
    path = Path(path)
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise SpecError(f"{path}: a spec file is a mapping starting with 'meta', got {type(data).__name__}")
    meta = data.get("meta")
    if not isinstance(meta, dict):
        raise SpecError(f"{path}: missing the 'meta' header (family, kind, title, format, sources, label)")
    for key in ("family", "kind", "title", "format", "sources", "label"):
        if key not in meta:
            raise SpecError(f"{path}: meta.{key}: missing")
    if meta["family"] not in FAMILIES:
        raise SpecError(f"{path}: meta.family {meta['family']!r} is not one of {', '.join(FAMILIES)}")
    if meta["format"] != FORMAT:
        raise SpecError(f"{path}: meta.format {meta['format']!r}: this harness reads format {FORMAT}")
    if not isinstance(meta["sources"], dict):
        raise SpecError(f"{path}: meta.sources must map a source key to its citation")
    if family and meta["family"] != family:
        raise SpecError(f"{path}: meta.family is {meta['family']!r}, expected {family!r}")
    if kind and meta["kind"] != kind:
        raise SpecError(f"{path}: meta.kind is {meta['kind']!r}, expected {kind!r}")
    body = {k: v for k, v in data.items() if k != "meta"}
    spec = SpecFile(path, meta, body)
    check_labels(spec)
    return spec


DESCRIBING = frozenset({"label", "source", "note", "name"})
"""Keys any mapping of a spec may carry besides its own."""


def known_keys(body: Any, known: set[str] | frozenset[str], where: str) -> None:
    """Refuse keys a spec mapping does not define (a typo must not be silently ignored)."""
    if not isinstance(body, dict):
        raise SpecError(f"{where}: must be a mapping")
    unknown = set(body) - set(known) - DESCRIBING
    if unknown:
        allowed = ", ".join(sorted(set(known) | DESCRIBING))
        raise SpecError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}; known: {allowed}")


def facts(spec: SpecFile) -> Iterator[tuple[str, str, tuple[str, ...]]]:
    """Every mapping carrying its own label or source: (key path, resolved label, resolved sources)."""
    default = (spec.meta["label"], _sources(spec.meta.get("source")))
    stack: list[tuple[str, Any, tuple[str, tuple[str, ...]]]] = [("", spec.body, default)]
    while stack:
        where, node, (label, sources) = stack.pop()
        if isinstance(node, dict):
            own_label, own_source = node.get("label"), node.get("source")
            if isinstance(own_label, str) or own_source is not None:
                label = own_label if isinstance(own_label, str) else label
                sources = _sources(own_source) if own_source is not None else sources
                yield where or "(file)", label, sources
            for key, value in node.items():
                if key not in ("label", "source"):
                    stack.append((f"{where}.{key}" if where else str(key), value, (label, sources)))
        elif isinstance(node, list):
            for i, value in enumerate(node):
                stack.append((f"{where}[{i}]", value, (label, sources)))


DESCRIPTIVE = frozenset({"label", "source", "note", "name", "what", "title"})


def label_counts(root: Path = SPECS) -> dict[str, dict[str, int]]:
    """Per family, how many facts carry each label; a fact is one value a check or the simulator uses
    (a length, a required flag, a code, an element path), so names and notes are not counted. Example
    requests (kind `examples`) are not facts about the interface and are not counted."""
    counts: dict[str, dict[str, int]] = {}
    for path in spec_files(root):
        spec = load(path)
        if spec.kind == "examples":
            continue
        tally = counts.setdefault(spec.meta["family"], {})
        stack: list[tuple[Any, str]] = [(spec.body, spec.meta["label"])]
        while stack:
            node, label = stack.pop()
            if isinstance(node, dict):
                label = node["label"] if isinstance(node.get("label"), str) else label
                stack.extend((v, label) for k, v in node.items() if k not in DESCRIPTIVE)
            elif isinstance(node, list):
                stack.extend((v, label) for v in node)
            else:
                tally[label] = tally.get(label, 0) + 1
    return counts


def check_labels(spec: SpecFile) -> None:
    declared = set(spec.meta["sources"])
    for where, label, sources in [
        ("meta", spec.meta["label"], _sources(spec.meta.get("source"))),
        *facts(spec),
    ]:
        if label not in LABELS:
            raise SpecError(f"{spec.path}: {where}: label {label!r} is not one of {', '.join(LABELS)}")
        unknown = [s for s in sources if s not in declared]
        if unknown:
            raise SpecError(
                f"{spec.path}: {where}: source {', '.join(unknown)} is not declared in meta.sources"
            )
        if label in ("V", "V*") and not sources:
            raise SpecError(f"{spec.path}: {where}: a {label} fact must name its source")


def _sources(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(s.strip() for s in value.split(",") if s.strip())
    if isinstance(value, list):
        return tuple(str(s) for s in value)
    return (str(value),)


def spec_files(root: Path = SPECS) -> Iterator[Path]:
    """Every YAML file under specs/ that carries a `meta` header (HL7 v2 profiles and FHIR excluded)."""
    for path in sorted(root.rglob("*.yaml")):
        head = path.read_text(encoding="utf-8").lstrip()
        lines = [ln for ln in head.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        if lines and lines[0].startswith("meta:"):
            yield path


def coverage(root: Path = SPECS) -> dict[str, dict[str, Any]]:
    """What the specs model against what the standard (or the public sources) names, per family."""
    medins_served = set()
    for path in sorted((root / "medins" / "transactions").glob("*.yaml")):
        medins_served |= set(load(path, family="medins").body.get("transactions") or {})
    unmodelled = load(root / "medins" / "unmodelled.yaml", family="medins").body
    national = {str(k) for k in medins_served if k != "0000"}
    actions = load(root / "hl7v3" / "services.yaml", family="hl7v3").body["actions"]
    levels: dict[str, int] = {}
    for body in actions.values():
        levels[str(body["level"])] = levels.get(str(body["level"]), 0) + 1
    cdc = load(root / "cdc" / "tables.yaml", family="cdc").body
    tables = cdc["tables"]
    return {
        "medins": {
            "modelled": len(national),
            "named": len(national) + len(unmodelled["national"]),
            "yunnan_local": sorted(unmodelled["yunnan"]),
        },
        "hl7v3": {"modelled": len(actions), "standard": 69, "levels": levels},
        "cdc": {"modelled": len(tables), "named": len(cdc["transport"]["endpoints"])},
    }
