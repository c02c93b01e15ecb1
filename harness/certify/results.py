"""A certification run's results: one cell per operation and check, the verdict, the summary.

A cell is `passed` (cases ran, none failed), `failed` (at least one case failed; its evidence is kept),
`not run` (it applies but no case ran, with the reason) or `waived` (failed or not run, accepted with a
reason). The verdict: FAIL when any cell failed, INCOMPLETE when none failed but some did not run, else
PASS. Checks that do not apply to an operation have no cell at all (the matrix shows a dash).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from harness.certify.cases import Evidence
from harness.spec.model import Interface

PASSED = "passed"
FAILED = "failed"
NOT_RUN = "not run"
WAIVED = "waived"
STATUSES = (PASSED, FAILED, NOT_RUN, WAIVED)
EVIDENCE_PER_CELL = 3
"""Failed cases kept as evidence per cell (the count of failures is always exact)."""


@dataclass(slots=True)
class Cell:
    operation: str
    check: str
    status: str = NOT_RUN
    cases: int = 0
    failures: int = 0
    reason: str = ""
    """Why it did not run, or the waiver's reason."""
    evidence: list[Evidence] = field(default_factory=list)
    seen: str = ""
    """For a passed cell, what one reply showed (e.g. `infcode -1: input.data.psn_no: missing`)."""
    waived_by: str = ""
    waived_status: str = ""
    """What the cell was before its waiver (failed or not run)."""

    def add(self, passed: bool, evidence: Evidence | None = None, seen: str = "") -> None:
        self.cases += 1
        if passed:
            if self.status == NOT_RUN:
                self.status = PASSED
            if seen and not self.seen:
                self.seen = seen
            return
        self.failures += 1
        self.status = FAILED
        if evidence is not None and len(self.evidence) < EVIDENCE_PER_CELL:
            self.evidence.append(evidence)

    def skip(self, reason: str) -> None:
        if self.status == NOT_RUN and not self.reason:
            self.reason = reason

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "operation": self.operation,
            "check": self.check,
            "status": self.status,
            "cases": self.cases,
            "failures": self.failures,
        }
        if self.reason:
            out["reason"] = self.reason
        if self.waived_by:
            out["waived_by"] = self.waived_by
            out["waived_status"] = self.waived_status
        if self.seen:
            out["seen"] = self.seen
        if self.evidence:
            out["evidence"] = [e.as_dict() for e in self.evidence]
        return out


@dataclass(slots=True)
class Row:
    """One row of the matrix: an operation, or a flow (`flow:outpatient`)."""

    id: str
    name: str
    group: str = ""
    label: str = ""
    flow: bool = False


@dataclass
class Run:
    interface: Interface
    mode: str  # active | passive
    target: str
    seed: int | None = None
    through: str | None = None
    started: datetime = field(default_factory=lambda: datetime.now().astimezone())
    finished: datetime | None = None
    rows: dict[str, Row] = field(default_factory=dict)
    cells: dict[tuple[str, str], Cell] = field(default_factory=dict)
    checks: list[str] = field(default_factory=list)
    """The columns in use, in order."""
    command: str = ""
    """The command line that reproduces this run (without the output options)."""
    notes: list[str] = field(default_factory=list)
    waivers: list[dict[str, Any]] = field(default_factory=list)
    harness_version: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    aborted: str | None = None

    # -- building ------------------------------------------------------------------------------
    def add_row(self, row: Row) -> None:
        self.rows.setdefault(row.id, row)

    def cell(self, operation: str, check: str) -> Cell:
        key = (operation, check)
        if key not in self.cells:
            self.cells[key] = Cell(operation, check)
        return self.cells[key]

    # -- reading -------------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STATUSES, 0)
        for cell in self.cells.values():
            out[cell.status] += 1
        return out

    @property
    def verdict(self) -> str:
        counts = self.counts()
        if counts[FAILED]:
            return "FAIL"
        if counts[NOT_RUN] or not self.cells or self.aborted:
            return "INCOMPLETE"
        return "PASS"

    def failed_cells(self) -> list[Cell]:
        order = {row: i for i, row in enumerate(self.rows)}
        cols = {check: i for i, check in enumerate(self.checks)}
        cells = [c for c in self.cells.values() if c.status == FAILED]
        return sorted(cells, key=lambda c: (order.get(c.operation, 0), cols.get(c.check, 0)))

    def summary(self) -> dict[str, Any]:
        """The one JSON object `--json` prints (and the head of the JSON report)."""
        counts = self.counts()
        known = self.interface.operations
        operations = [r for r in self.rows.values() if not r.flow and r.id in known]
        return {
            "spec": str(self.interface.path),
            "family": self.interface.family,
            "title": self.interface.title,
            "spec_version": self.interface.version,
            "mode": self.mode,
            "target": self.target,
            "through": self.through,
            "verdict": self.verdict,
            "operations": len(operations),
            "operations_covered": sum(
                1 for r in operations if any(c.cases for (op, _), c in self.cells.items() if op == r.id)
            ),
            "flows": sum(1 for r in self.rows.values() if r.flow),
            "unknown_operations": sorted(
                r.id for r in self.rows.values() if not r.flow and r.id not in known
            ),
            "checks": len(self.cells),
            "passed": counts[PASSED],
            "failed": counts[FAILED],
            "skipped": counts[NOT_RUN],
            "waived": counts[WAIVED],
            "cases": sum(c.cases for c in self.cells.values()),
            "failed_cases": sum(c.failures for c in self.cells.values()),
            "seed": self.seed,
            "started": self.started.isoformat(timespec="seconds"),
            "finished": self.finished.isoformat(timespec="seconds") if self.finished else None,
            "harness_version": self.harness_version,
            "aborted": self.aborted,
        }
