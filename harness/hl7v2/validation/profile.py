"""Interface profiles: how one interface constrains the standard, as data.

Two formats load into the same Profile:
- YAML (specs/hl7v2/*.yaml; schema in specs/hl7v2/README.md): allowed message types, version,
  charsets, Z-segment policy, segment usage/cardinality, and per field usage, repetitions,
  value sets (inline or from a file), patterns, lengths and datatypes; `extends:` merges a base
  profile first (the child wins key by key).
- HL7 v2 XML conformance profiles (Message Workbench / HAPI: <HL7v2xConformanceProfile> with
  <HL7v2xStaticDef>, <SegGroup>, <Segment Usage Min Max>, <Field Usage Min Max Datatype Length
  Table>, <Component>, <SubComponent>): the static definition becomes the message structure (it
  replaces the standard's) and field rules.

A profile never loosens the standard: its findings come on top of the standard's (codes PROFILE-*).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from harness.hl7v2.validation.datatypes import FORMATS
from harness.hl7v2.validation.findings import Finding, Location, finding

USAGES = ("R", "RE", "O", "C", "CE", "X", "B", "W")
_PATH = re.compile(r"([A-Z][A-Z0-9]{2})-(\d+)(?:\.(\d+)(?:\.(\d+))?)?")


class ProfileError(ValueError):
    """A profile file that cannot be used; the message says which file and which key."""


@dataclass(slots=True)
class FieldRule:
    path: str
    segment: str
    field: int
    component: int | None = None
    subcomponent: int | None = None
    usage: str | None = None
    max_repetitions: int | None = None
    values: frozenset[str] | None = None
    value_set: str | None = None
    pattern: re.Pattern | None = None
    min_length: int | None = None
    max_length: int | None = None
    datatype: str | None = None


@dataclass(slots=True)
class SegmentRule:
    segment: str
    usage: str | None = None
    min: int | None = None
    max: int | None = None


@dataclass(slots=True)
class Rules:
    segments: dict[str, SegmentRule] = field(default_factory=dict)
    fields: dict[str, list[FieldRule]] = field(default_factory=dict)  # by segment id

    def add_field(self, rule: FieldRule) -> None:
        self.fields.setdefault(rule.segment, []).append(rule)


@dataclass
class Profile:
    name: str
    description: str = ""
    source: str = ""
    version: str | None = None
    charsets: frozenset[str] | None = None
    message_types: frozenset[str] | None = None
    z_segments: object = "allow"  # "allow" | "forbid" | frozenset of allowed ids
    common: Rules = field(default_factory=Rules)
    per_message: dict[str, Rules] = field(default_factory=dict)
    structures: dict[str, tuple] = field(default_factory=dict)  # "ADT^A01" or structure id -> body
    coding_systems: frozenset[str] = frozenset()  # local coding systems accepted in table 0396 (CWE.3 ...)
    coding_system_labels: dict[str, str] = field(default_factory=dict)
    waivers: tuple[str, ...] = ()  # waiver files named by the profile (absolute paths)

    # -- what the validator asks -------------------------------------------------------------

    def structure_for(self, message_code: str | None, structure: str | None) -> tuple | None:
        if not self.structures:
            return None
        for key in (message_code, structure):
            if key and key in self.structures:
                return self.structures[key]
        return None

    def check(self, view, out: list[Finding]) -> None:
        code = view.message_code
        if self.message_types is not None and code not in self.message_types:
            trigger_less = code.split("^", 1)[0] if code else None
            if trigger_less not in self.message_types:
                out.append(
                    finding(
                        "PROFILE-MESSAGE-TYPE",
                        Location(1, "MSH", 9),
                        f"profile {self.name} does not allow message type {code or 'empty'}",
                        expected=" ".join(sorted(self.message_types)),
                        actual=code or "empty",
                    )
                )
        if self.version and view.version != self.version:
            out.append(
                finding(
                    "PROFILE-VERSION",
                    Location(1, "MSH", 12),
                    f"profile {self.name} is for HL7 {self.version}; MSH-12 says {view.version or 'nothing'}",
                    expected=self.version,
                    actual=view.version or "empty",
                )
            )
        if self.charsets is not None:
            declared = (view.declared_charset or "").strip().upper()
            if declared not in self.charsets:
                out.append(
                    finding(
                        "PROFILE-CHARSET",
                        Location(1, "MSH", 18),
                        f"profile {self.name} requires MSH-18 to be one of "
                        f"{', '.join(sorted(c or 'empty' for c in self.charsets))}",
                        expected=" ".join(sorted(self.charsets)),
                        actual=declared or "empty",
                    )
                )
        rule_sets = [self.common]
        if code and code in self.per_message:
            rule_sets.append(self.per_message[code])
        elif view.structure and view.structure in self.per_message:
            rule_sets.append(self.per_message[view.structure])
        for rules in rule_sets:
            self._check_rules(rules, view, out)

    def _check_rules(self, rules: Rules, view, out: list[Finding]) -> None:
        counts: dict[str, int] = {}
        for _, sid, _ in view.segments:
            counts[sid] = counts.get(sid, 0) + 1
        for sid, rule in rules.segments.items():
            n = counts.get(sid, 0)
            if rule.usage == "X" and n:
                first = next(i for i, s, _ in view.segments if s == sid)
                out.append(
                    finding(
                        "PROFILE-SEGMENT-FORBIDDEN",
                        Location(first, sid),
                        f"profile {self.name} does not support segment {sid}",
                        expected="absent",
                        actual=f"{n} occurrence(s)",
                    )
                )
            lo = rule.min if rule.min is not None else (1 if rule.usage == "R" else 0)
            if n < lo:
                out.append(
                    finding(
                        "PROFILE-SEGMENT-REQUIRED",
                        Location(None, sid),
                        f"profile {self.name} requires segment {sid}"
                        + (f" at least {lo} times" if lo > 1 else ""),
                        expected=f"at least {lo}",
                        actual=str(n),
                    )
                )
            if rule.max is not None and rule.max >= 0 and n > rule.max and rule.usage != "X":
                out.append(
                    finding(
                        "PROFILE-SEGMENT-CARDINALITY",
                        Location(None, sid),
                        f"profile {self.name} allows segment {sid} at most {rule.max} times",
                        expected=f"at most {rule.max}",
                        actual=str(n),
                    )
                )
        if not rules.fields:
            return
        for i, sid, fields in view.segments:
            frules = rules.fields.get(sid)
            if not frules:
                continue
            for rule in frules:
                raw = view.field_value(fields, sid, rule.field)
                reps = [raw] if (sid == "MSH" and rule.field <= 2) else raw.split(view.rep)
                if rule.component is None and rule.max_repetitions is not None:
                    n = sum(1 for r in reps if r)
                    if n > rule.max_repetitions:
                        out.append(
                            finding(
                                "PROFILE-FIELD-CARDINALITY",
                                Location(i, sid, rule.field),
                                f"profile {self.name} allows {rule.path} at most "
                                f"{rule.max_repetitions} times",
                                expected=f"at most {rule.max_repetitions}",
                                actual=str(n),
                            )
                        )
                values = [(k, _part(r, rule, view)) for k, r in enumerate(reps, 1)]
                present = [(k, v) for k, v in values if v and v != '""']
                multi = len(reps) > 1
                if not present:
                    # a required component only binds when its field is there at all
                    if rule.usage == "R" and (rule.component is None or any(reps)):
                        out.append(
                            finding(
                                "PROFILE-FIELD-REQUIRED",
                                Location(i, sid, rule.field, None, rule.component, rule.subcomponent),
                                f"profile {self.name} requires {rule.path}",
                                expected="a value",
                                actual="empty",
                            )
                        )
                    continue
                for k, value in present:
                    loc = Location(
                        i, sid, rule.field, k if multi else None, rule.component, rule.subcomponent
                    )
                    self._check_value(rule, value, view, loc, out)

    def _check_value(self, rule: FieldRule, value: str, view, loc: Location, out: list[Finding]) -> None:
        if rule.usage == "X":
            out.append(
                finding(
                    "PROFILE-FIELD-FORBIDDEN",
                    loc,
                    f"profile {self.name} does not support {rule.path}",
                    expected="empty",
                    actual=value,
                )
            )
            return
        text = _unescape(value, view)
        code = text
        if rule.component is None and view.comp in value:  # a field-level value set binds the code
            code = _unescape(value.split(view.comp, 1)[0], view)
        if rule.values is not None and code not in rule.values:
            where = f"value set {rule.value_set}" if rule.value_set else "the allowed values"
            shown = sorted(rule.values)
            out.append(
                finding(
                    "PROFILE-VALUE-SET",
                    loc,
                    f"{rule.path} value {code!r} is not in {where} of profile {self.name}",
                    expected=" ".join(shown[:12]) + (" …" if len(shown) > 12 else ""),
                    actual=code,
                )
            )
        if rule.pattern is not None and not rule.pattern.fullmatch(text):
            out.append(
                finding(
                    "PROFILE-PATTERN",
                    loc,
                    f"{rule.path} value {text!r} does not match the pattern of profile {self.name}",
                    expected=rule.pattern.pattern,
                    actual=text,
                )
            )
        if rule.max_length is not None and len(text) > rule.max_length:
            out.append(
                finding(
                    "PROFILE-LENGTH",
                    loc,
                    f"{rule.path} is {len(text)} characters long; profile {self.name} allows "
                    f"{rule.max_length}",
                    expected=f"at most {rule.max_length}",
                    actual=str(len(text)),
                )
            )
        if rule.min_length is not None and len(text) < rule.min_length:
            out.append(
                finding(
                    "PROFILE-LENGTH",
                    loc,
                    f"{rule.path} is {len(text)} characters long; profile {self.name} requires "
                    f"at least {rule.min_length}",
                    expected=f"at least {rule.min_length}",
                    actual=str(len(text)),
                )
            )
        fmt = FORMATS.get(rule.datatype or "")
        if fmt is not None and not fmt[0](value.split(view.comp, 1)[0] if rule.component is None else value):
            out.append(
                finding(
                    "PROFILE-DATATYPE",
                    loc,
                    f"{rule.path} is not a valid {rule.datatype} value",
                    expected=fmt[2],
                    actual=value,
                )
            )


def _part(rep: str, rule: FieldRule, view) -> str:
    if rule.component is None:
        return rep
    comps = rep.split(view.comp)
    if rule.component > len(comps):
        return ""
    value = comps[rule.component - 1]
    if rule.subcomponent is None:
        return value
    subs = value.split(view.sub)
    return subs[rule.subcomponent - 1] if rule.subcomponent <= len(subs) else ""


def _unescape(value: str, view) -> str:
    if not view.esc or view.esc not in value:
        return value
    from harness.hl7v2.escape import Delimiters, unescape

    delims = Delimiters("|", view.comp, view.rep, view.esc, view.sub)
    try:
        return unescape(value, delims, view.codec)
    except Exception:  # noqa: BLE001 - a malformed escape is the standard check's finding; compare raw
        return value


# ---------------------------------------------------------------------------------------------
# loading


def load(path: str | Path) -> Profile:
    """Load a YAML or XML profile (by content: XML starts with '<')."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read profile: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ProfileError(f"{path}: profile is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if text.lstrip().startswith("<"):
        return load_xml(text, str(path))
    return _from_yaml(path, set())


def _yaml_file(path: Path) -> dict:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise ProfileError(f"{path}:{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ProfileError(f"{path}: a profile must be a mapping of keys, got {type(data).__name__}")
    return data


def _merge(base: dict, child: dict) -> dict:
    out = dict(base)
    for key, value in child.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _from_yaml(path: Path, seen: set) -> Profile:
    data = _resolved_yaml(path, seen)
    return _build(data, path)


def _resolved_yaml(path: Path, seen: set) -> dict:
    real = path.resolve()
    if real in seen:
        raise ProfileError(f"{path}: 'extends' forms a cycle")
    seen.add(real)
    data = _yaml_file(path)
    if "waivers" in data:  # waiver files are relative to the profile that names them
        names = data["waivers"]
        names = [names] if isinstance(names, str) else names
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            raise ProfileError(f"{path}: waivers must be a file path or a list of file paths")
        data["waivers"] = [str(path.parent / n) if not Path(n).is_absolute() else n for n in names]
    parent = data.pop("extends", None)
    if parent:
        if not isinstance(parent, str):
            raise ProfileError(f"{path}: 'extends' must be a file path")
        ppath = (path.parent / parent) if not Path(parent).is_absolute() else Path(parent)
        if not ppath.exists():
            raise ProfileError(f"{path}: 'extends' names {parent}, which does not exist")
        base = _resolved_yaml(ppath, seen)
        base.pop("name", None)
        base.pop("description", None)
        data = _merge(base, data)
    # value-set files are relative to the profile that names them
    for name, vs in (data.get("value_sets") or {}).items():
        if isinstance(vs, dict) and "file" in vs and "_base" not in vs:
            vs["_base"] = str(path.parent)
        elif not isinstance(vs, (dict, list)):
            raise ProfileError(f"{path}: value_sets.{name} must be a list of codes or a mapping")
    return data


KNOWN_KEYS = {
    "meta",  # the common spec header (specs/FORMAT.md); read by harness.spec, not by the validator
    "name",
    "description",
    "version",
    "charset",
    "message_types",
    "z_segments",
    "value_sets",
    "segments",
    "fields",
    "messages",
    "coding_systems",
    "waivers",
}


def _build(data: dict, path: Path) -> Profile:
    unknown = set(data) - KNOWN_KEYS
    if unknown:
        raise ProfileError(
            f"{path}: unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(KNOWN_KEYS))}"
        )
    prof = Profile(
        name=str(data.get("name") or path.stem),
        description=str(data.get("description") or ""),
        source=str(path),
    )
    if data.get("version") is not None:
        prof.version = str(data["version"])
    cs = data.get("charset")
    if cs is not None:
        items = cs if isinstance(cs, list) else [cs]
        prof.charsets = frozenset(("" if c is None else str(c)).strip().upper() for c in items)
    if data.get("message_types") is not None:
        mts = data["message_types"]
        if not isinstance(mts, list):
            raise ProfileError(f"{path}: message_types must be a list such as [ADT^A01, ADT^A04]")
        prof.message_types = frozenset(str(m) for m in mts)
    z = data.get("z_segments", "allow")
    if isinstance(z, list):
        prof.z_segments = frozenset(str(s) for s in z)
    elif z in ("allow", "forbid"):
        prof.z_segments = z
    else:
        raise ProfileError(f"{path}: z_segments must be allow, forbid or a list of allowed Z-segment ids")
    systems = data.get("coding_systems")
    if systems is not None:
        if isinstance(systems, list):
            systems = {str(s): "" for s in systems}
        if not isinstance(systems, dict) or not all(str(k).strip() for k in systems):
            raise ProfileError(
                f"{path}: coding_systems must map each coding system name (as sent in CWE.3) to a "
                f"description, e.g. {{GBT2261.1: 'GB/T 2261.1 人的性别代码'}}"
            )
        prof.coding_system_labels = {str(k): str(v or "") for k, v in systems.items()}
        prof.coding_systems = frozenset(prof.coding_system_labels)
    prof.waivers = tuple(data.get("waivers") or ())
    value_sets = _value_sets(data.get("value_sets") or {}, path)
    prof.common = _rules(data, value_sets, path, "")
    for code, body in (data.get("messages") or {}).items():
        if not isinstance(body, dict):
            raise ProfileError(f"{path}: messages.{code} must be a mapping with segments/fields")
        prof.per_message[str(code)] = _rules(body, value_sets, path, f"messages.{code}.")
    return prof


def _value_sets(raw: dict, path: Path) -> dict[str, frozenset[str]]:
    out = {}
    for name, vs in raw.items():
        if isinstance(vs, list):
            out[name] = frozenset(str(v) for v in vs)
            continue
        if "file" in vs:
            vpath = Path(vs.get("_base") or path.parent) / vs["file"]
            loaded = _yaml_file(vpath)
            codes = loaded.get("codes", loaded)
        else:
            codes = vs.get("codes", {})
        if isinstance(codes, dict):
            out[name] = frozenset(str(k) for k in codes)
        elif isinstance(codes, list):
            out[name] = frozenset(str(k) for k in codes)
        else:
            raise ProfileError(f"{path}: value_sets.{name}: codes must be a mapping code -> label or a list")
    return out


def _rules(data: dict, value_sets: dict, path: Path, prefix: str) -> Rules:
    rules = Rules()
    for sid, spec in (data.get("segments") or {}).items():
        spec = spec if isinstance(spec, dict) else {"usage": spec}
        usage = spec.get("usage")
        if usage is not None and usage not in USAGES:
            raise ProfileError(f"{path}: {prefix}segments.{sid}.usage {usage!r}: one of {' '.join(USAGES)}")
        rules.segments[str(sid)] = SegmentRule(str(sid), usage, spec.get("min"), _max(spec.get("max")))
    for fpath, spec in (data.get("fields") or {}).items():
        m = _PATH.fullmatch(str(fpath))
        if not m:
            raise ProfileError(
                f"{path}: {prefix}fields.{fpath}: a field path looks like PID-3, PID-5.1 or PID-3.4.1"
            )
        spec = spec if isinstance(spec, dict) else {"usage": spec}
        where = f"{path}: {prefix}fields.{fpath}"
        usage = spec.get("usage")
        if usage is not None and usage not in USAGES:
            raise ProfileError(f"{where}.usage {usage!r}: one of {' '.join(USAGES)}")
        rule = FieldRule(
            str(fpath),
            m.group(1),
            int(m.group(2)),
            int(m.group(3)) if m.group(3) else None,
            int(m.group(4)) if m.group(4) else None,
            usage=usage,
            max_repetitions=_max(spec.get("max")),
            min_length=spec.get("min_length"),
            max_length=spec.get("max_length"),
            datatype=spec.get("datatype"),
        )
        if "values" in spec:
            vals = spec["values"]
            rule.values = frozenset(str(v) for v in (vals if isinstance(vals, list) else list(vals)))
        if "value_set" in spec:
            name = spec["value_set"]
            if name not in value_sets:
                raise ProfileError(f"{where}.value_set {name!r} is not defined under value_sets")
            rule.value_set = name
            rule.values = value_sets[name]
        if "pattern" in spec:
            try:
                rule.pattern = re.compile(str(spec["pattern"]))
            except re.error as exc:
                raise ProfileError(f"{where}.pattern: {exc}") from None
        rules.add_field(rule)
    return rules


def _max(value) -> int | None:
    if value is None:
        return None
    if value in ("*", -1, "-1"):
        return -1
    return int(value)


# ---------------------------------------------------------------------------------------------
# HL7 v2 XML conformance profiles (Message Workbench / HAPI)


def load_xml(text: str, source: str = "<xml>") -> Profile:
    from lxml import etree

    try:
        root = etree.fromstring(
            text.encode("utf-8"), parser=etree.XMLParser(resolve_entities=False, no_network=True)
        )
    except etree.XMLSyntaxError as exc:
        raise ProfileError(f"{source}: not well-formed XML: {exc}") from None
    if etree.QName(root).localname != "HL7v2xConformanceProfile":
        raise ProfileError(f"{source}: root element must be HL7v2xConformanceProfile")
    prof = Profile(name=root.get("Identifier") or Path(source).stem, source=source)
    version = root.get("HL7Version")
    if version:
        prof.version = version
    codes: set[str] = set()
    for static in root.iter("{*}HL7v2xStaticDef", "HL7v2xStaticDef"):
        mtype, event, struct = static.get("MsgType"), static.get("EventType"), static.get("MsgStructID")
        code = f"{mtype}^{event}" if mtype and event else (mtype or struct or "")
        codes.add(code)
        rules = Rules()
        body = _xml_body(static, rules, "")
        for key in {code, struct} - {None, ""}:
            prof.structures[key] = body
            prof.per_message[key] = rules
    if not codes:
        raise ProfileError(f"{source}: no HL7v2xStaticDef element")
    prof.message_types = frozenset(codes)
    prof.z_segments = "forbid"  # an XML profile lists every segment it allows
    return prof


def _xml_card(el, default_min: int = 0) -> tuple[int, int, str]:
    usage = el.get("Usage") or "O"
    lo = int(el.get("Min") or default_min)
    mx = el.get("Max") or "1"
    hi = -1 if mx == "*" else int(mx)
    if usage == "R":
        lo = max(lo, 1)
    return lo, hi, usage


def _xml_body(parent, rules: Rules, path: str) -> tuple:
    from lxml import etree

    children = []
    for el in parent:
        if not isinstance(el.tag, str):
            continue
        tag = etree.QName(el).localname
        if tag == "Segment":
            lo, hi, usage = _xml_card(el)
            sid = el.get("Name")
            if usage in ("X", "B", "W") and usage == "X":
                rules.segments[sid] = SegmentRule(sid, "X")
                continue
            children.append(("S", sid, lo, hi))
            _xml_fields(el, sid, rules)
        elif tag == "SegGroup":
            lo, hi, usage = _xml_card(el)
            if usage == "X":
                continue
            name = el.get("Name")
            children.append(("G", name, lo, hi, _xml_body(el, rules, f"{path}{name}.")))
    return ("seq", tuple(children))


def _xml_fields(seg_el, sid: str, rules: Rules) -> None:
    from lxml import etree

    number = 0
    for fel in seg_el:
        if not isinstance(fel.tag, str) or etree.QName(fel).localname != "Field":
            continue
        number += 1
        lo, hi, usage = _xml_card(fel)
        length = fel.get("Length")
        rule = FieldRule(
            f"{sid}-{number}",
            sid,
            number,
            usage=usage if usage in ("R", "X") else None,
            max_repetitions=hi if hi >= 0 else None,
            max_length=int(length) if length and length.isdigit() else None,
            datatype=fel.get("Datatype"),
        )
        if rule.usage or rule.max_repetitions is not None or rule.max_length or rule.datatype in FORMATS:
            rules.add_field(rule)
        comp_no = 0
        for cel in fel:
            if not isinstance(cel.tag, str) or etree.QName(cel).localname != "Component":
                continue
            comp_no += 1
            cusage = cel.get("Usage") or "O"
            clen = cel.get("Length")
            if cusage in ("R", "X") or (clen and clen.isdigit()) or cel.get("Datatype") in FORMATS:
                rules.add_field(
                    FieldRule(
                        f"{sid}-{number}.{comp_no}",
                        sid,
                        number,
                        comp_no,
                        usage=cusage if cusage in ("R", "X") else None,
                        max_length=int(clen) if clen and clen.isdigit() else None,
                        datatype=cel.get("Datatype"),
                    )
                )
