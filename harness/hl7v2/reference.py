"""The HL7 v2 standard as compact tables, compiled from hl7apy's own reference data.

hl7apy ships the message structures, segments, fields, datatypes and tables of versions 2.1-2.8.2
as nested Python literals; importing and walking them costs seconds, so they are compiled once
per version into plain tuples and dicts and cached with `marshal` (keyed by the hl7apy version
and this module's format number). Validation then loads one version lazily from the cache in a
few milliseconds and never imports hl7apy.

Compiled shapes (all plain, marshal-able values):
- structures: name -> ("seq"|"choice", children); child = ("S", segment id, min, max) or
  ("G", group name, min, max, ("seq"|"choice", children)); max -1 is unbounded.
- segments: id -> tuple of fields (long name, datatype, min, max, table or None); field n is
  item n-1 (withdrawn fields that hl7apy leaves out are kept as "WD" placeholders).
- datatypes: composite id -> tuple of components (long name, datatype, table or None, min); min 1
  marks a component required whenever its field has a value (2.6 on; hl7apy's 2.1 tables mark
  nearly every component required, which no 2.1 message follows, so 2.1 keeps them optional).
- base: base datatype id -> maximum length (-1 when none).
- tables: table id ("HL70001") -> (description, values).
"""

from __future__ import annotations

import marshal
import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

FORMAT = 5
VERSIONS: tuple[str, ...] = (
    "2.1",
    "2.2",
    "2.3",
    "2.3.1",
    "2.4",
    "2.5",
    "2.5.1",
    "2.6",
    "2.7",
    "2.8",
    "2.8.1",
    "2.8.2",
)
ANY_SEGMENT = "*"  # the ANYHL7SEGMENT pseudo segment of some structures


class UnsupportedVersion(ValueError):
    """A version the reference data does not cover; the message names the supported ones."""

    def __init__(self, version: str | None) -> None:
        self.version = version
        super().__init__(
            f"HL7 version {version!r} is not supported; supported versions: {', '.join(VERSIONS)}"
        )


@dataclass(slots=True)
class Standard:
    """One version of the standard, compiled."""

    version: str
    structures: dict
    segments: dict
    datatypes: dict
    base: dict
    tables: dict
    _table_sets: dict = field(default_factory=dict, repr=False)

    def table(self, table_id: str | None) -> frozenset[str] | None:
        """The codes of an HL7 table as a set, or None when the version has no such table."""
        if not table_id:
            return None
        cached = self._table_sets.get(table_id)
        if cached is None:
            entry = self.tables.get(table_id)
            if entry is None:
                return None
            cached = self._table_sets[table_id] = frozenset(entry[1])
        return cached

    def is_base(self, datatype: str | None) -> bool:
        return datatype in self.base


def cache_dir() -> Path:
    """Where compiled tables live: $HARNESS_CACHE_DIR, else $XDG_CACHE_HOME/harness, else ~/.cache/harness."""
    explicit = os.environ.get("HARNESS_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "harness"


def _hl7apy_version() -> str:
    try:
        from importlib.metadata import version

        return version("hl7apy")
    except Exception:  # noqa: BLE001 - any metadata problem means "unknown", which still keys a cache
        return "unknown"


def _cache_path(version: str) -> Path:
    py = f"{sys.version_info[0]}{sys.version_info[1]}"
    name = f"hl7v2-reference-{version}-hl7apy{_hl7apy_version()}-f{FORMAT}-py{py}.marshal"
    return cache_dir() / name


_LOCK = threading.Lock()
_LOADED: dict[str, Standard] = {}


def normalise_version(version: str | None) -> str:
    """'2.5' stays '2.5'; ' 2.3.1 ' is trimmed; anything unknown raises UnsupportedVersion."""
    text = (version or "").strip()
    if text in VERSIONS:
        return text
    raise UnsupportedVersion(version)


def load(version: str) -> Standard:
    """The compiled standard for one version: from memory, else the disk cache, else compiled now."""
    version = normalise_version(version)
    std = _LOADED.get(version)
    if std is not None:
        return std
    with _LOCK:
        std = _LOADED.get(version)
        if std is None:
            std = _LOADED[version] = Standard(version, *_load_tables(version))
    return std


def _load_tables(version: str) -> tuple:
    path = _cache_path(version)
    try:
        with open(path, "rb") as fh:
            data = marshal.load(fh)
        if isinstance(data, tuple) and len(data) == 5:
            return data
    except (OSError, EOFError, ValueError, TypeError):
        pass
    data = compile_version(version)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        with open(tmp, "wb") as fh:
            marshal.dump(data, fh)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home still validates, it just compiles per process
    return data


def build_cache(versions: tuple[str, ...] = VERSIONS) -> list[Path]:
    """Compile and write the cache for the given versions (a build step; load() does it lazily)."""
    paths = []
    for version in versions:
        _LOADED.pop(version, None)
        try:
            _cache_path(version).unlink()
        except OSError:
            pass
        load(version)
        paths.append(_cache_path(version))
    return paths


# ---------------------------------------------------------------------------------------------
# compilation from hl7apy (build time only)


def compile_version(version: str) -> tuple:
    """Walk hl7apy's reference modules of one version into the compact shapes above."""
    import importlib

    import hl7apy

    module = importlib.import_module(hl7apy.SUPPORTED_LIBRARIES[version])
    groups_src = module.GROUPS
    segments_src = module.SEGMENTS
    fields_src = module.FIELDS
    dts_src = module.DATATYPES_STRUCTS
    tables_src = getattr(module, "TABLES", {})
    base_classes = module.get_base_datatypes()

    def children(items) -> tuple:
        out = []
        for item in items:
            name, (lo, hi), kind = item[0], item[2], item[3]
            if kind == "GRP":
                gref = groups_src[name]
                out.append(("G", name, lo, hi, (_kind(gref[0]), children(gref[1]))))
            elif name == "ANYHL7SEGMENT":
                out.append(("S", ANY_SEGMENT, lo, hi))
            else:
                out.append(("S", name, lo, hi))
        return tuple(out)

    structures = {}
    for name, ref in module.MESSAGES.items():
        structures[name] = (_kind(ref[0]), children(ref[1]))

    segments = {}
    for seg, ref in segments_src.items():
        if seg == "ANYHL7SEGMENT" or ref[0] != "sequence":
            continue
        if len(ref) < 2:  # withdrawn segments (QRD in 2.7) keep a name and no fields
            segments[seg] = ()
            continue
        flds: list[tuple] = []
        for item in ref[1]:
            fname, (lo, hi) = item[0], item[2]
            _place(flds, fname, ("WITHDRAWN", "WD", 0, 1, None))
            fdef = fields_src.get(fname) or item[1]
            if fdef is None:
                flds.append(("", "ST", lo, hi, None))
                continue
            flds.append((fdef[3] or "", fdef[2] or "ST", lo, hi, fdef[4]))
        segments[seg] = tuple(flds)

    datatypes = {}
    for dt, comps in dts_src.items():
        out: list[tuple] = []
        for item in comps:
            cref = item[1]
            _place(out, item[0], ("WITHDRAWN", "WD", None, 0))
            out.append((cref[3] or "", cref[2] or "ST", cref[4], item[2][0] if version != "2.1" else 0))
        datatypes[dt] = tuple(out)

    base = {name: _base_max_length(cls) for name, cls in base_classes.items()}
    tables = {tid: (entry[0] or "", tuple(str(v) for v in entry[1])) for tid, entry in tables_src.items()}
    return structures, segments, datatypes, base, tables


def _place(items: list, name: str, filler: tuple) -> None:
    """Pad with withdrawn placeholders up to an element's own number (hl7apy omits withdrawn
    fields from 2.6 on, e.g. EVN-1 in 2.8, which would shift every later field by one)."""
    suffix = name.rsplit("_", 1)[-1]
    if suffix.isdigit():
        while len(items) < int(suffix) - 1:
            items.append(filler)


def _kind(kind: str) -> str:
    return "choice" if kind == "choice" else "seq"


def _base_max_length(cls) -> int:
    from decimal import Decimal

    for sample in ("x", Decimal(1), 1):
        try:
            obj = cls(sample)
        except Exception:  # noqa: BLE001 - date/time classes reject every probe; they have no length
            continue
        value = getattr(obj, "max_length", None)
        return value if isinstance(value, int) else -1
    return -1


if __name__ == "__main__":  # python -m harness.hl7v2.reference: prebuild the cache
    for built in build_cache():
        print(built)
