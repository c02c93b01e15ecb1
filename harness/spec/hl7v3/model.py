"""The 互联互通 services as data: specs/hl7v3/services.yaml, checked and compiled once at start-up.

Every XPath is compiled here, so a typo in the spec is an error naming the action and the expression
when the simulator starts, never an exception while a message is being checked.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree

from harness import specfile
from harness.specfile import SpecError

SPEC = specfile.SPECS / "hl7v3" / "services.yaml"
HL7 = "urn:hl7-org:v3"
NS = {"hl7": HL7}
OPS = ("add", "update", "upsert", "merge", "query")
ACTION_KEYS = frozenset({"category", "level", "root", "extension", "response", "registry", "required"})


@dataclass(slots=True)
class Check:
    xpath: etree.XPath
    what: str
    attrs: dict[str, dict] = field(default_factory=dict)


@dataclass(slots=True)
class Action:
    name: str
    title: str
    level: str
    roots: tuple[str, ...]
    extensions: tuple[str, ...]
    responses: dict[str, str]  # root received -> response interaction
    registry: str
    op: str
    key: etree.XPath
    prior: etree.XPath | None
    required: list[Check]

    def response(self, root: str) -> str:
        return self.responses.get(root) or next(iter(self.responses.values()))


@dataclass(slots=True)
class ServicesSpec:
    oids: dict[str, str]
    ack: str
    wrapper: list[Check]
    actions: dict[str, Action]
    levels: dict[str, int]
    file: specfile.SpecFile


def load(path: Path = SPEC) -> ServicesSpec:
    stamp = path.stat().st_mtime_ns
    return _load(path, stamp)


@functools.lru_cache(maxsize=4)
def _load(path: Path, stamp: int) -> ServicesSpec:
    spec = specfile.load(path, family="hl7v3", kind="actions")
    body = spec.body
    where = str(path)
    wrapper = [_check(c, f"{where}: wrapper[{i}]") for i, c in enumerate(body.get("wrapper") or [])]
    actions: dict[str, Action] = {}
    levels: dict[str, int] = {}
    for name, a in (body.get("actions") or {}).items():
        at = f"{where}: actions.{name}"
        specfile.known_keys(a, ACTION_KEYS, at)
        specfile.known_keys(a.get("registry") or {}, {"name", "op", "key", "prior"}, f"{at}.registry")
        for i, item in enumerate(a.get("required") or []):
            specfile.known_keys(item, {"xpath", "what", "attrs"}, f"{at}.required[{i}]")
        for key in ("name", "level", "root", "response", "registry"):
            if key not in a:
                raise SpecError(f"{at}.{key}: missing")
        reg = a["registry"]
        if reg.get("op") not in OPS:
            raise SpecError(f"{at}.registry.op {reg.get('op')!r}: one of {', '.join(OPS)}")
        response = a["response"]
        if isinstance(response, dict) and "value" in response:
            responses = {a["root"][0]: str(response["value"])}
        elif isinstance(response, dict):
            responses = {str(k): str(v) for k, v in response.items()}
        else:
            responses = {a["root"][0]: str(response)}
        actions[name] = Action(
            name=name,
            title=str(a["name"]),
            level=str(a["level"]),
            roots=tuple(str(r) for r in a["root"]),
            extensions=tuple(str(e) for e in (a.get("extension") or a["root"])),
            responses=responses,
            registry=str(reg["name"]),
            op=reg["op"],
            key=_xpath(reg["key"], f"{at}.registry.key"),
            prior=_xpath(reg["prior"], f"{at}.registry.prior") if reg.get("prior") else None,
            required=[_check(c, f"{at}.required[{i}]") for i, c in enumerate(a.get("required") or [])],
        )
        levels[str(a["level"])] = levels.get(str(a["level"]), 0) + 1
    if not actions:
        raise SpecError(f"{where}: no actions")
    return ServicesSpec(
        oids={k: str(v) for k, v in body["oids"].items() if k not in ("source", "label", "note")},
        ack=str(body["ack"]["interaction"]),
        wrapper=wrapper,
        actions=actions,
        levels=levels,
        file=spec,
    )


def _xpath(text: Any, where: str) -> etree.XPath:
    try:
        return etree.XPath(str(text), namespaces=NS)
    except etree.XPathSyntaxError as exc:
        raise SpecError(f"{where}: XPath {text!r} does not compile: {exc}") from None


def _check(body: Any, where: str) -> Check:
    if not isinstance(body, dict) or "xpath" not in body:
        raise SpecError(f"{where}: needs xpath (and what)")
    return Check(
        _xpath(body["xpath"], f"{where}.xpath"),
        str(body.get("what") or body["xpath"]),
        dict(body.get("attrs") or {}),
    )


def interface(spec_dir: Path = SPEC.parent):
    """The common view (harness.spec.model.Interface) of an hl7v3 spec folder, its model in `native`."""
    from harness.spec import examples
    from harness.spec.model import Interface, Operation

    spec = load(spec_dir / "services.yaml")
    body = spec.file.body
    operations = {
        name: Operation(
            name, action.title, action.level, _label(body["actions"][name], spec.file), "services.yaml"
        )
        for name, action in spec.actions.items()
    }
    found = examples.find(spec_dir)
    files = [spec.file.path, *(sorted((spec_dir / "examples").glob("*.xml")))] + ([found] if found else [])
    return Interface(
        family="hl7v3",
        title=spec.file.meta["title"],
        path=spec_dir,
        files=files,
        operations=operations,
        transport=f"SOAP 1.2 HIPMessageServer(action, message) at {body['transport']['service_path']}",
        rejection=(
            f"{spec.ack} with acknowledgement typeCode AE and an acknowledgementDetail saying why; "
            "a SOAP Fault for a broken envelope"
        ),
        native=spec,
        examples=examples.load(found, family="hl7v3") if found else None,
    )


def _label(body: dict, spec: specfile.SpecFile) -> str:
    return str(body.get("label") or spec.meta["label"])
