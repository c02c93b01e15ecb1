"""FHIR R4 as one model: fhir.resources' R4B structures plus the required bindings it does not enforce.

specs/fhir/required-bindings.yaml names, per model class and field, the codes a `required` binding allows.
`Validator` judges a resource: structure (400) first, then the bindings (422), each problem an
OperationOutcome issue naming the element. The simulator (harness mock fhir) and certification (harness
certify) both read this.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from harness import specfile

SPEC = specfile.SPECS / "fhir" / "required-bindings.yaml"
TYPE_RE = re.compile(r"[A-Z][A-Za-z]+")
ABSTRACT = {"Resource", "DomainResource"}


class FhirError(Exception):
    """Becomes an OperationOutcome with this status and these issues."""

    def __init__(self, status: int, issues: list[dict]) -> None:
        super().__init__(issues[0].get("diagnostics", "") if issues else "")
        self.status = status
        self.issues = issues

    @classmethod
    def one(cls, status: int, diagnostics: str, **details: Any) -> FhirError:
        """The usual case, one issue (`details` as for `issue`)."""
        return cls(status, [issue(diagnostics, **details)])


def issue(
    diagnostics: str, *, code: str = "invalid", severity: str = "error", expression: str | None = None
) -> dict:
    out = {"severity": severity, "code": code, "diagnostics": diagnostics}
    if expression:
        out["expression"] = [expression]
    return out


def operation_outcome(issues: list[dict]) -> dict:
    return {"resourceType": "OperationOutcome", "issue": issues}


class Validator:
    """fhir.resources R4B plus required bindings; returns issues, never raises on content."""

    def __init__(self, spec_path: Path = SPEC) -> None:
        from fhir.resources.R4B import get_fhir_model_class

        self._model_class = get_fhir_model_class
        spec = load_bindings(spec_path)
        self.by_class: dict[str, list[tuple[str, dict]]] = {}
        for key, binding in spec["bindings"].items():
            cls, _, fld = key.partition(".")
            self.by_class.setdefault(cls, []).append((fld, binding))
        self._known: dict[str, bool] = {}

    def is_resource_type(self, name: str) -> bool:
        if name not in self._known:
            try:
                from fhir.resources.R4B.resource import Resource

                cls = self._model_class(name) if TYPE_RE.fullmatch(name) and name not in ABSTRACT else None
                # Datatypes (HumanName, ...) are models too; only resources count.
                self._known[name] = cls is not None and issubclass(cls, Resource)
            except (KeyError, ValueError, AttributeError):
                self._known[name] = False
        return self._known[name]

    def unknown_types(self, value: Any, path: str) -> list[dict]:
        """Every nested `resourceType` that names no R4 resource (fhir.resources would KeyError on it)."""
        found: list[dict] = []
        if isinstance(value, dict):
            rt = value.get("resourceType")
            if "resourceType" in value and (not isinstance(rt, str) or not self.is_resource_type(rt)):
                found.append(issue(f"unknown resourceType {rt!r}", code="not-supported", expression=path))
            for key, item in value.items():
                if isinstance(item, dict | list):
                    found.extend(self.unknown_types(item, f"{path}.{key}"))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                found.extend(self.unknown_types(item, f"{path}[{i}]"))
        return found

    def validate(self, resource: dict) -> tuple[int, list[dict]]:
        """(status, issues): (0, []) when valid, else 400 (structure) or 422 (binding)."""
        rt = resource.get("resourceType")
        if not isinstance(rt, str) or not rt:
            return 400, [issue("resource has no resourceType", code="required", expression="resourceType")]
        unknown = self.unknown_types(resource, rt)
        if unknown:
            return 400, unknown
        from pydantic import ValidationError

        try:
            model = self._model_class(rt).model_validate(resource)
        except ValidationError as exc:
            return 400, [self._pydantic_issue(rt, err) for err in exc.errors()[:50]]
        except Exception as exc:  # the library's own failures still become an outcome
            return 400, [issue(f"{rt} could not be validated: {exc!r}", code="structure", expression=rt)]
        problems = list(self._bindings(model, rt))
        return (422, problems) if problems else (0, [])

    @staticmethod
    def _pydantic_issue(rt: str, err: dict) -> dict:
        path = rt
        for part in err.get("loc", ()):
            path += f"[{part}]" if isinstance(part, int) else f".{part}"
        code = "required" if "missing" in err.get("type", "") else "structure"
        value = err.get("input")
        shown = "" if value is None or isinstance(value, dict | list) else f" (got {value!r})"
        return issue(f"{path}: {err.get('msg', 'invalid')}{shown}", code=code, expression=path)

    def _bindings(self, model: Any, path: str) -> Iterable[dict]:
        from pydantic import BaseModel

        for fld, binding in self.by_class.get(type(model).__name__, ()):
            value = getattr(model, fld, None)
            if value is None:
                continue
            values = value if isinstance(value, list) else [value]
            for i, item in enumerate(values):
                where = f"{path}.{fld}" + (f"[{i}]" if isinstance(value, list) else "")
                if "system" in binding:
                    for j, coding in enumerate(getattr(item, "coding", None) or []):
                        if coding.system == binding["system"] and coding.code not in binding["codes"]:
                            yield self._binding_issue(f"{where}.coding[{j}].code", coding.code, binding)
                elif item not in binding["codes"]:
                    yield self._binding_issue(where, item, binding)
        for name, value in model:
            if value is None or name.endswith("__ext"):
                continue
            if isinstance(value, BaseModel):
                yield from self._bindings(value, f"{path}.{name}")
            elif isinstance(value, list):
                for i, item in enumerate(value):
                    if isinstance(item, BaseModel):
                        yield from self._bindings(item, f"{path}.{name}[{i}]")

    def bound(self, resource: dict) -> list[tuple[tuple, dict]]:
        """Every element of a valid resource a required binding covers: (its JSON path, the binding)."""
        from pydantic import BaseModel

        model = self._model_class(resource["resourceType"]).model_validate(resource)
        found: list[tuple[tuple, dict]] = []

        def walk(node: Any, path: tuple) -> None:
            fields = type(node).model_fields
            for fld, binding in self.by_class.get(type(node).__name__, ()):
                value = getattr(node, fld, None)
                if value is None:
                    continue
                name = fields[fld].alias or fld if fld in fields else fld
                items = list(enumerate(value)) if isinstance(value, list) else [(None, value)]
                for i, item in items:
                    at = (*path, name) if i is None else (*path, name, i)
                    if "system" in binding:
                        for j, coding in enumerate(getattr(item, "coding", None) or []):
                            if coding.system == binding["system"]:
                                found.append(((*at, "coding", j, "code"), binding))
                    else:
                        found.append((at, binding))
            for name, value in node:
                if value is None or name.endswith("__ext"):
                    continue
                key = fields[name].alias or name if name in fields else name
                if isinstance(value, BaseModel):
                    walk(value, (*path, key))
                elif isinstance(value, list):
                    for i, item in enumerate(value):
                        if isinstance(item, BaseModel):
                            walk(item, (*path, key, i))

        walk(model, ())
        return found

    @staticmethod
    def _binding_issue(where: str, value: Any, binding: dict) -> dict:
        return issue(
            f"{where}: {value!r} is not in the required value set {binding['valueset']} "
            f"({', '.join(binding['codes'])})",
            code="code-invalid",
            expression=where,
        )


def load_bindings(path: Path = SPEC) -> dict[str, Any]:
    """The bindings file's body, its header checked (family fhir, kind bindings)."""
    spec = specfile.load(path, family="fhir", kind="bindings")
    bindings = spec.body.get("bindings")
    if not isinstance(bindings, dict) or not bindings:
        raise specfile.SpecError(f"{path}: bindings: a mapping of Class.field to {{valueset, codes}}")
    for key, binding in bindings.items():
        if "." not in str(key) or not isinstance(binding, dict) or not binding.get("codes"):
            raise specfile.SpecError(
                f"{path}: bindings.{key}: needs Class.field and {{valueset, codes: [...]}}"
            )
    return spec.body


def interface(spec_dir: Path = SPEC.parent):
    """The common view (harness.spec.model.Interface) of a FHIR spec folder: one operation per resource
    type its examples create, the bindings model in `native`."""
    from harness.spec import examples
    from harness.spec.model import Interface, Operation

    spec = specfile.load(spec_dir / SPEC.name, family="fhir", kind="bindings")
    validator = Validator(spec_dir / SPEC.name)
    found = examples.find(spec_dir)
    loaded = examples.load(found, family="fhir") if found else None
    resources = (loaded.get("resources") if loaded else None) or {}
    operations = {
        rtype: Operation(rtype, f"create and read {rtype}", "resources", "S", "examples.yaml")
        for rtype in resources
    }
    files = [spec.path] + ([found] if found else [])
    files += sorted((spec_dir / "examples").glob("*.json"))
    return Interface(
        family="fhir",
        title=spec.meta["title"],
        path=spec_dir,
        files=files,
        operations=operations,
        transport="FHIR R4 REST, JSON (application/fhir+json), under the server's base",
        rejection="HTTP 4xx with an OperationOutcome naming the element (422 for a binding)",
        native=validator,
        examples=loaded,
    )
