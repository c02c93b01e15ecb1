"""Medical-insurance (医保) transactions for load, as data: a flow of envelopes with values chained.

A flow (YAML, see loadtests/flows/) names a sign-in envelope sent once per user (9001) and the steps
of one visit, each a request envelope template (the fixtures under fixtures/medins/ are templates as
they stand) plus:

- ``set``: paths in the envelope to overwrite, values with ``{{name}}`` placeholders
  (``input.feedetail[*].psn_no: "{{psn_no}}"``; ``[*]`` is every item of a list);
- ``save``: variables to take from the answer (``mdtrt_id: output.data.mdtrt_id``).

Placeholders already in a template (``{{sign_no}}`` in the fixtures) are filled the same way. Each
visit starts with fresh variables: ``certno`` (a valid 身份证 of an invented person, with ``psn_name``,
``gend``, ``brdy``), ``visit_no`` (a unique outpatient number), ``chrg_bchno``, ``now`` and ``today``;
later steps use what earlier answers saved. The user fills the envelope's own fields on every call:
``msgid`` (unique, `harness.load.ids.MsgIds`), ``inf_time`` (now) and ``sign_no`` (from the user's
sign-in). A new transaction slots in as one more step in the YAML, without code.

An answer is accepted when ``infcode`` is 0 (a number or a string); otherwise the step fails with
``infcode -1: <err_msg>`` and the rest of the visit is not sent, as a cashier would stop there.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from harness.load.people import Person

__all__ = [
    "Flow", "FlowError", "Step", "Visit", "answer_failure", "build", "fill", "get_path", "set_path",
    "visit_variables",
]  # fmt: skip

DEFAULT_PATH = "/fsi/api/rsfComIfsService/callService"
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
_PART = re.compile(r"([^\[\]]*)((?:\[(?:\d+|\*)\])*)")
_INDEX = re.compile(r"\[(\d+|\*)\]")
REASON_MAX = 120


class FlowError(ValueError):
    """A flow file that cannot be used; the message names the file and key."""


def _tokens(path: str) -> list[str | int]:
    """``a.b[0].c[*]`` -> ['a', 'b', 0, 'c', '*']."""
    out: list[str | int] = []
    for part in path.split("."):
        m = _PART.fullmatch(part)
        if not m or not part:
            raise FlowError(f"path {path!r}: expected keys separated by dots, with [n] or [*] for lists")
        if m.group(1):
            out.append(m.group(1))
        out.extend("*" if i == "*" else int(i) for i in _INDEX.findall(m.group(2)))
    return out


def get_path(doc: Any, path: str) -> Any:
    """The value at ``a.b[0].c``; None when any part is missing."""
    value = doc
    for token in _tokens(path):
        if isinstance(token, int):
            value = value[token] if isinstance(value, list) and -len(value) <= token < len(value) else None
        elif token == "*":
            return None
        else:
            value = value.get(token) if isinstance(value, dict) else None
        if value is None:
            return None
    return value


def set_path(doc: Any, path: str, value: Any) -> int:
    """Set every place ``path`` names (``[*]``: each item); returns how many were set."""

    def walk(node: Any, tokens: list[str | int]) -> int:
        token, rest = tokens[0], tokens[1:]
        if token == "*":
            if not isinstance(node, list):
                return 0
            return sum(walk(item, rest) if rest else _put(node, i, value) for i, item in enumerate(node))
        if isinstance(token, int):
            if not isinstance(node, list) or not -len(node) <= token < len(node):
                return 0
            return walk(node[token], rest) if rest else _put(node, token, value)
        if not isinstance(node, dict):
            return 0
        if not rest:
            return _put(node, token, value)
        if token not in node:
            return 0
        return walk(node[token], rest)

    return walk(doc, _tokens(path))


def _put(node: Any, key: Any, value: Any) -> int:
    node[key] = value
    return 1


def fill(value: Any, variables: Mapping[str, Any]) -> Any:
    """Fill ``{{name}}`` placeholders: a string that is exactly one placeholder takes the variable's
    value (its type kept); inside longer strings the value is written as text. Unknown names stay."""
    if isinstance(value, dict):
        return {k: fill(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, variables) for v in value]
    if isinstance(value, str) and "{{" in value:
        whole = _PLACEHOLDER.fullmatch(value)
        if whole and whole.group(1) in variables:
            return variables[whole.group(1)]
        return _PLACEHOLDER.sub(
            lambda m: str(variables[m.group(1)]) if m.group(1) in variables else m.group(0), value
        )
    return value


@dataclass(frozen=True, slots=True)
class Step:
    infno: str
    template: dict
    set: tuple[tuple[str, Any], ...] = ()
    save: tuple[tuple[str, str], ...] = ()

    def to_json(self) -> dict:
        return {
            "infno": self.infno,
            "template": self.template,
            "set": [list(p) for p in self.set],
            "save": [list(p) for p in self.save],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Step:
        return cls(
            data["infno"],
            data["template"],
            tuple((p, v) for p, v in data.get("set", ())),
            tuple((n, p) for n, p in data.get("save", ())),
        )


@dataclass(frozen=True, slots=True)
class Flow:
    name: str
    steps: tuple[Step, ...]
    sign_in: Step | None = None
    path: str = DEFAULT_PATH
    description: str = ""

    @property
    def names(self) -> list[str]:
        return [s.infno for s in self.steps]

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "path": self.path,
            "sign_in": self.sign_in.to_json() if self.sign_in else None,
            "steps": [s.to_json() for s in self.steps],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Flow:
        sign_in = data.get("sign_in")
        return cls(
            data["name"],
            tuple(Step.from_json(s) for s in data["steps"]),
            Step.from_json(sign_in) if sign_in else None,
            data.get("path", DEFAULT_PATH),
            data.get("description", ""),
        )

    @classmethod
    def load(cls, path: str | Path) -> Flow:
        """Read a flow YAML; template paths are relative to the flow file."""
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise FlowError(f"{path}: {exc}") from None
        if not isinstance(data, dict):
            raise FlowError(f"{path}: expected a mapping with steps")
        unknown = sorted(set(data) - {"name", "description", "path", "sign_in", "steps"})
        if unknown:
            raise FlowError(
                f"{path}: {unknown[0]}: unknown key; known keys: description, name, path, sign_in, steps"
            )
        steps = data.get("steps")
        if not isinstance(steps, list) or not steps:
            raise FlowError(f"{path}: steps: expected a non-empty list")
        sign_in = data.get("sign_in")
        return cls(
            str(data.get("name") or path.stem),
            tuple(_step(s, path, f"steps[{i}]") for i, s in enumerate(steps)),
            _step(sign_in, path, "sign_in") if sign_in else None,
            str(data.get("path") or DEFAULT_PATH),
            str(data.get("description") or ""),
        )


def _step(data: Any, flow_path: Path, where: str) -> Step:
    here = f"{flow_path}: {where}"
    if isinstance(data, str):
        data = {"template": data}
    if not isinstance(data, dict):
        raise FlowError(f"{here}: expected a template path or a mapping with template, set, save")
    unknown = sorted(set(data) - {"template", "set", "save"})
    if unknown:
        raise FlowError(f"{here}.{unknown[0]}: unknown key; known keys: save, set, template")
    ref = data.get("template")
    if not isinstance(ref, str):
        raise FlowError(f"{here}.template: expected the path of a request envelope (JSON)")
    file = (flow_path.parent / ref).resolve()
    try:
        template = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FlowError(f"{here}.template: {file}: {exc}") from None
    if not isinstance(template, dict) or not isinstance(template.get("infno"), str):
        raise FlowError(f"{here}.template: {file} is not a request envelope with an infno")
    sets = data.get("set") or {}
    saves = data.get("save") or {}
    if not isinstance(sets, dict) or not isinstance(saves, dict):
        raise FlowError(f"{here}: set and save map paths to values and variables to paths")
    for p in [*sets, *saves.values()]:
        try:
            _tokens(str(p))
        except FlowError as exc:
            raise FlowError(f"{here}: {exc}") from None
    for p in sets:
        probe = copy.deepcopy(template)
        if not set_path(probe, str(p), None):
            raise FlowError(f"{here}.set: {p} names nothing in {file.name}")
    return Step(
        template["infno"],
        template,
        tuple((str(k), v) for k, v in sets.items()),
        tuple((str(k), str(v)) for k, v in saves.items()),
    )


def answer_failure(doc: Any) -> str | None:
    """None when the centre accepted the call (infcode 0), else why (short, for grouping failures)."""
    if not isinstance(doc, dict):
        return "the answer is not a JSON object"
    code = doc.get("infcode")
    if code == 0 or code == "0":
        return None
    text = " ".join(str(doc.get("err_msg") or "").split())
    reason = f"infcode {code}: {text}" if text else f"infcode {code}"
    return reason if len(reason) <= REASON_MAX else reason[: REASON_MAX - 1] + "…"


@dataclass(slots=True)
class Visit:
    """One pass through a flow's steps with its variables (sans-IO: the caller sends and receives)."""

    flow: Flow
    variables: dict[str, Any] = field(default_factory=dict)
    position: int = 0

    @property
    def finished(self) -> bool:
        return self.position >= len(self.flow.steps)

    @property
    def step(self) -> Step:
        return self.flow.steps[self.position]

    def request(self, envelope: Mapping[str, Any]) -> dict:
        """The next step's envelope: template, `set` paths, placeholders, then the envelope fields given."""
        return build(self.step, self.variables, envelope)

    def answer(self, doc: Any) -> str | None:
        """Take the answer to the current step; None (and on to the next step) when accepted."""
        failure = answer_failure(doc)
        if failure is not None:
            return failure
        for name, path in self.step.save:
            value = get_path(doc, path)
            if value is None:
                return f"answer to {self.step.infno} has no {path} (needed as {name})"
            self.variables[name] = value
        self.position += 1
        return None


def visit_variables(person: Person, serial: str) -> dict[str, Any]:
    """The values a visit starts with (see the module docstring); `serial` makes its numbers unique."""
    now = datetime.now()
    return {
        "certno": person.idcard,
        "psn_name": person.name,
        "gend": person.gb_sex,
        "brdy": person.birth.isoformat(),
        "visit_no": f"MZ{serial}",
        "chrg_bchno": f"B{serial}",
        "now": f"{now:%Y-%m-%d %H:%M:%S}",
        "today": f"{now:%Y-%m-%d}",
    }


def build(step: Step, variables: Mapping[str, Any], envelope: Mapping[str, Any]) -> dict:
    doc = copy.deepcopy(step.template)
    for path, value in step.set:
        set_path(doc, path, value)
    doc = fill(doc, variables)
    doc.update(envelope)
    return doc
