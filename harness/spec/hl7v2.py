"""HL7 v2 interface profiles as one model for certification: the profile, its message types, its examples.

A profile (specs/hl7v2/*.yaml, read by harness.hl7v2.validation.profile) constrains the standard for one
interface; `examples.yaml` beside the profiles gives, per profile, one example message per message type
and the flows to run. One profile is one interface: certification, the validator and `harness mock mllp
--profile` read the same file.
"""

from __future__ import annotations

from pathlib import Path

from harness import specfile
from harness.hl7v2.validation import profile as profiles
from harness.spec import examples
from harness.spec.model import Interface, Operation
from harness.specfile import SpecError

SPEC_DIR = specfile.SPECS / "hl7v2"


def certifiable(spec_dir: Path = SPEC_DIR) -> list[Path]:
    """The profiles of a folder that its examples.yaml gives examples for."""
    found = examples.find(spec_dir)
    if found is None:
        return []
    listed = examples.load(found, family="hl7v2").get("profiles") or {}
    return [spec_dir / f"{name}.yaml" for name in listed if (spec_dir / f"{name}.yaml").is_file()]


def interface(path: Path) -> Interface:
    """The common view of one profile (a file), or of the only certifiable profile of a folder."""
    if path.is_dir():
        choices = certifiable(path)
        if len(choices) != 1:
            shown = ", ".join(str(p) for p in choices) or "none with examples"
            raise SpecError(f"{path}: holds {len(choices)} HL7 v2 profiles to certify; name one: {shown}")
        path = choices[0]
    try:
        profile = profiles.load(path)
    except profiles.ProfileError as exc:
        raise SpecError(str(exc)) from None
    found = examples.find(path.parent)
    loaded = examples.load(found, family="hl7v2") if found else None
    mine = ((loaded.get("profiles") if loaded else None) or {}).get(profile.name) or {}
    messages = mine.get("messages") or {}
    allowed = sorted(profile.message_types or messages)
    operations = {
        code: Operation(code, _describe(code), code.split("^")[0], "S" if code in messages else "", path.name)
        for code in allowed
    }
    files = [path, *_bases(path)] + ([found] if found else [])
    files += [path.parent / str(f) for f in messages.values()]
    return Interface(
        family="hl7v2",
        title=f"{profile.name}: {profile.description}".rstrip(": "),
        path=path,
        files=[f for f in files if f.is_file()],
        operations=operations,
        transport=f"MLLP, HL7 v{profile.version or '2.x'}, acknowledgements as MSH-15/16 ask",
        rejection="AE or AR (CE or CR in enhanced mode) with an ERR segment saying why",
        native=profile,
        examples=loaded,
    )


def _bases(path: Path) -> list[Path]:
    """The profiles a profile extends, nearest first."""
    out: list[Path] = []
    seen = {path.resolve()}
    while True:
        data = specfile.read_yaml(path)
        parent = data.get("extends") if isinstance(data, dict) else None
        if not parent:
            return out
        path = path.parent / str(parent)
        if path.resolve() in seen or not path.is_file():
            return out
        seen.add(path.resolve())
        out.append(path)


_EVENTS = {
    "A01": "admit (入院登记)",
    "A02": "transfer (转科)",
    "A03": "discharge (出院)",
    "A04": "register an outpatient (门诊挂号)",
    "A08": "update patient information",
    "A11": "cancel admit",
    "A12": "cancel transfer",
    "A13": "cancel discharge",
    "A40": "merge patients",
    "R01": "observation result (检验结果)",
    "R24": "laboratory result (检验结果, OUL)",
}


def _describe(code: str) -> str:
    event = code.split("^")[1] if "^" in code else ""
    return f"{code} {_EVENTS.get(event, '')}".strip()
