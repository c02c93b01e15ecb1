"""The medical-insurance interface as data: specs/medins/*.yaml and specs/medins/transactions/*.yaml.

Loading checks the whole spec once (field types, code-set names, behaviours, duplicate transactions), so
a typo in a YAML file is a clear error at start-up naming the file and key, never a crash mid-visit.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import specfile
from harness.specfile import SpecError

SPEC_DIR = specfile.SPECS / "medins"
FIELD_TYPES = ("str", "num", "int", "date", "datetime", "bytes", "any", "object", "list")
FIELD_KEYS = {
    "name",
    "type",
    "max",
    "decimals",
    "required",
    "required_when",
    "code",
    "coded",
    "values",
    "pattern",
    "note",
    "label",
    "source",
    "fields",
    "requires_filing",
    "one_or_many",
}
TX_KEYS = {"name", "group", "label", "source", "behaviour", "input", "output", "note", "transport"}


@dataclass(slots=True)
class Transaction:
    infno: str
    name: str
    group: str
    behaviour: dict[str, Any]
    input: dict[str, dict]
    output: dict[str, dict]
    label: str
    file: Path
    note: str = ""

    @property
    def rule(self) -> str:
        return self.behaviour["rule"]


@dataclass(slots=True)
class MedinsSpec:
    envelope: dict[str, Any]
    transactions: dict[str, Transaction]
    codes: dict[str, dict[str, str]]  # national code sets: name -> code -> label
    local_codes: dict[str, dict[str, dict[str, str]]]  # admdvs prefix -> set name -> code -> label
    admdvs: dict[str, Any]
    simulator: dict[str, Any]
    files: dict[str, specfile.SpecFile] = field(default_factory=dict)

    def codeset(self, name: str, area: str | None = None) -> dict[str, str]:
        """A code set's codes, with the local extension of the area's province (admdvs prefix) when any."""
        codes = self.codes[name]
        if area:
            for prefix, sets in self.local_codes.items():
                if area.startswith(prefix) and name in sets:
                    return {**codes, **sets[name]}
        return codes


def load_spec(spec_dir: Path = SPEC_DIR, *, rules: set[str] | None = None) -> MedinsSpec:
    """Read and check every medins spec file; `rules` are the behaviour names the simulator implements.

    The result is shared between simulators of one process (a spec is read-only once loaded) and read
    again when a file under `spec_dir` changes.
    """
    stamp = tuple((p.name, p.stat().st_mtime_ns) for p in sorted(spec_dir.rglob("*.yaml")))
    return _load(spec_dir, frozenset(rules) if rules is not None else None, stamp)


@functools.lru_cache(maxsize=8)
def _load(spec_dir: Path, rules: frozenset[str] | None, stamp: tuple) -> MedinsSpec:
    def one(name: str, kind: str) -> specfile.SpecFile:
        return specfile.load(spec_dir / f"{name}.yaml", family="medins", kind=kind)

    files = {
        "envelope": one("envelope", "envelope"),
        "codes": one("codes", "codes"),
        "admdvs": one("admdvs", "admdvs"),
        "simulator": one("simulator", "simulator"),
    }
    codes: dict[str, dict[str, str]] = {}
    for name, body in files["codes"].body.get("sets", {}).items():
        codes[name] = _codes(body, f"{files['codes'].path}: sets.{name}")
    local: dict[str, dict[str, dict[str, str]]] = {}
    for prefix, body in (files["codes"].body.get("local") or {}).items():
        where = f"{files['codes'].path}: local.{prefix}"
        sets = body.get("sets") if isinstance(body, dict) else None
        if not isinstance(sets, dict):
            raise SpecError(f"{where}: needs `sets` (code-set name -> codes)")
        local[str(prefix)] = {}
        for name, codeset in sets.items():
            if name not in codes:
                raise SpecError(f"{where}.sets.{name}: no national code set of that name")
            local[str(prefix)][name] = _codes(codeset, f"{where}.sets.{name}")
    transactions: dict[str, Transaction] = {}
    for path in sorted((spec_dir / "transactions").glob("*.yaml")):
        spec = specfile.load(path, family="medins", kind="transactions")
        files[f"transactions/{path.stem}"] = spec
        group = path.stem
        for infno, body in (spec.body.get("transactions") or {}).items():
            infno = str(infno)
            where = f"{path}: transactions.{infno}"
            if infno in transactions:
                raise SpecError(f"{where}: also defined in {transactions[infno].file}")
            transactions[infno] = _transaction(infno, body, where, group, path, spec, codes, rules)
    if not transactions:
        raise SpecError(f"{spec_dir / 'transactions'}: no transactions defined")
    return MedinsSpec(
        envelope=files["envelope"].body,
        transactions=transactions,
        codes=codes,
        local_codes=local,
        admdvs=files["admdvs"].body,
        simulator=files["simulator"].body,
        files=files,
    )


def _codes(body: Any, where: str) -> dict[str, str]:
    codes = body.get("codes") if isinstance(body, dict) else None
    if not isinstance(codes, dict) or not codes:
        raise SpecError(f"{where}: needs `codes` (code -> name)")
    return {str(k): str(v.get("name") if isinstance(v, dict) else v) for k, v in codes.items()}


def _transaction(
    infno: str,
    body: Any,
    where: str,
    group: str,
    path: Path,
    spec: specfile.SpecFile,
    codes: dict,
    rules: set[str] | None,
) -> Transaction:
    if not isinstance(body, dict):
        raise SpecError(f"{where}: must be a mapping")
    specfile.known_keys(body, TX_KEYS, where)
    for key in ("name", "behaviour", "input"):
        if key not in body:
            raise SpecError(f"{where}.{key}: missing")
    behaviour = body["behaviour"]
    if isinstance(behaviour, str):
        behaviour = {"rule": behaviour}
    if not isinstance(behaviour, dict) or not behaviour.get("rule"):
        raise SpecError(f"{where}.behaviour: needs `rule` (the simulator behaviour serving it)")
    if rules is not None and behaviour["rule"] not in rules:
        raise SpecError(
            f"{where}.behaviour.rule {behaviour['rule']!r} is not a simulator rule "
            f"({', '.join(sorted(rules))})"
        )
    for part in ("input", "output"):
        nodes = body.get(part) or {}
        if not isinstance(nodes, dict):
            raise SpecError(f"{where}.{part}: must map node names to node specs")
        for name, node in nodes.items():
            _check_field(node, f"{where}.{part}.{name}", codes)
    label = body.get("label") or spec.meta["label"]
    return Transaction(
        infno=infno,
        name=str(body["name"]),
        group=str(body.get("group") or group),
        behaviour=dict(behaviour),
        input=dict(body["input"] or {}),
        output=dict(body.get("output") or {}),
        label=label,
        file=path,
        note=str(body.get("note") or ""),
    )


def _check_field(spec: Any, where: str, codes: dict) -> None:
    if not isinstance(spec, dict):
        raise SpecError(f"{where}: must be a mapping such as {{name: 人员编号, type: str, max: 30}}")
    specfile.known_keys(spec, FIELD_KEYS, where)
    kind = spec.get("type", "str")
    if kind not in FIELD_TYPES:
        raise SpecError(f"{where}.type {kind!r} is not one of {', '.join(FIELD_TYPES)}")
    if "code" in spec and spec["code"] not in codes:
        raise SpecError(f"{where}.code {spec['code']!r} is not a code set in codes.yaml")
    if kind in ("object", "list"):
        if not isinstance(spec.get("fields"), dict):
            raise SpecError(f"{where}.fields: an {kind} needs its fields")
        for name, sub in spec["fields"].items():
            _check_field(sub, f"{where}.fields.{name}", codes)
    elif "fields" in spec:
        raise SpecError(f"{where}.fields: only object and list nodes have fields")


def interface(spec_dir: Path = SPEC_DIR):
    """The common view (harness.spec.model.Interface) of a medins spec folder, its model in `native`."""
    from harness.spec import examples
    from harness.spec.model import Interface, Operation

    spec = load_spec(spec_dir)
    operations = {
        infno: Operation(
            infno, tx.name, tx.group, tx.label, str(tx.file.relative_to(spec_dir)) if tx.file else ""
        )
        for infno, tx in sorted(spec.transactions.items())
    }
    found = examples.find(spec_dir)
    files = [f.path for f in spec.files.values()] + ([found] if found else [])
    national = spec.envelope.get("transports", {}).get("national", {}).get("path", "")
    return Interface(
        family="medins",
        title=spec.files["envelope"].meta["title"],
        path=spec_dir,
        files=files,
        operations=operations,
        transport=f"HTTP POST of the JSON envelope to {national} (the national gateway path)",
        rejection="HTTP 200 with infcode -1 and an err_msg saying why",
        native=spec,
        examples=examples.load(found, family="medins") if found else None,
    )
