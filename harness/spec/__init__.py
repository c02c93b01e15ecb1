"""Interface specifications as one model: `load(path)` reads a spec folder (or an HL7 v2 profile file).

Each family has its reader here (`medins`, `hl7v3`, `cdc`, `fhir`, `hl7v2`), which the simulators and
certification both use; `model` is the common view (transport, operations, how invalid requests are
refused) and `examples` the example requests kept beside each spec. Files are read by harness.specfile,
so a broken spec is an error naming its file and key.
"""

from __future__ import annotations

from pathlib import Path

from harness import specfile
from harness.spec.model import Interface, Operation
from harness.specfile import SpecError

__all__ = ["Interface", "Operation", "SpecError", "family_of", "load"]


def family_of(path: Path) -> str:
    """The family a spec folder or file belongs to, from the `meta` headers of its files."""
    if path.is_file():
        data = specfile.read_yaml(path)
        meta = data.get("meta") if isinstance(data, dict) else None
        if isinstance(meta, dict) and meta.get("family"):
            return str(meta["family"])
        if isinstance(data, dict) and ("fields" in data or "message_types" in data or "extends" in data):
            return "hl7v2"
        raise SpecError(f"{path}: not a spec file (no meta header) nor an HL7 v2 profile")
    if not path.is_dir():
        raise SpecError(f"{path}: no such spec folder or file")
    families = {specfile.load(p).family for p in specfile.spec_files(path)}
    if not families:
        raise SpecError(f"{path}: no spec files here (YAML files starting with a meta header)")
    if len(families) > 1:
        raise SpecError(f"{path}: holds specs of several families ({', '.join(sorted(families))}); name one")
    return families.pop()


def resolve(path: str | Path) -> Path:
    """A spec path as given, or a bare name for the specs shipped with harness: a family (`medins`,
    `hl7v3`, `cdc`, `fhir`) or an HL7 v2 profile (`yunnan-his-adt`), when no such file or folder is here."""
    given = Path(path)
    if given.exists() or len(given.parts) != 1:
        return given
    shipped = specfile.SPECS / given.name
    if given.name in specfile.FAMILIES and shipped.is_dir():
        return shipped
    profile = specfile.SPECS / "hl7v2" / f"{given.name}.yaml"
    return profile if profile.is_file() else given


def load(path: str | Path) -> Interface:
    """The interface a spec folder (or HL7 v2 profile file) describes; SpecError names what is wrong.

    A bare name is looked up among the specs shipped with harness (see `resolve`)."""
    path = resolve(path)
    family = family_of(path)
    if family == "hl7v2":
        from harness.spec import hl7v2

        return hl7v2.interface(path)
    if path.is_file():
        path = path.parent
    if family == "medins":
        from harness.spec.medins.model import interface
    elif family == "hl7v3":
        from harness.spec.hl7v3.model import interface
    elif family == "cdc":
        from harness.spec.cdc import interface
    elif family == "fhir":
        from harness.spec.fhir import interface
    else:  # pragma: no cover - specfile refuses other families
        raise SpecError(f"{path}: family {family!r} has no reader")
    found = interface(path)
    found.title = _heading(path / "README.md") or found.title
    return found


def _heading(readme: Path) -> str | None:
    """The first `# ` heading of a spec folder's README: the interface's name as people call it."""
    if not readme.is_file():
        return None
    for line in readme.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return None
