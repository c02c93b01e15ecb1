"""The common view of an interface specification, whatever its family.

An interface is a transport, an envelope and operations; each family's reader (harness.spec.medins,
hl7v3, cdc, fhir, hl7v2) fills this view and keeps its own detailed model in `native`, which the
simulators and certification's case generators read. Reports, coverage and the pytest items need only
this view.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import specfile


@dataclass(slots=True)
class Operation:
    id: str
    """The operation's code on the wire: an infno (2207), an action, a table, a message type, a resource."""
    name: str
    group: str = ""
    label: str = ""
    """The label the operation's spec carries (V, V*, M, L, S; specs/FORMAT.md)."""
    source: str = ""
    """The spec file that defines it, relative to the spec folder."""


@dataclass(slots=True)
class Interface:
    family: str
    title: str
    path: Path
    """What was named: a spec folder or one spec file (an HL7 v2 profile)."""
    files: list[Path]
    operations: dict[str, Operation]
    transport: str
    """How requests travel, in a sentence."""
    rejection: str
    """How the spec says an invalid request is refused, in a sentence."""
    native: Any = None
    examples: Any = None
    """The examples kept beside the spec (harness.spec.examples.Examples), when there are any."""
    notes: list[str] = field(default_factory=list)

    @property
    def version(self) -> str:
        """The spec's format and a digest of its files: two runs with the same version read the same facts."""
        digest = hashlib.sha256()
        for path in sorted(self.files):
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
        return f"format {specfile.FORMAT}, sha256 {digest.hexdigest()[:12]} of {len(self.files)} file(s)"
