"""`make audit`'s judge (tools/audit.py): bandit over the package is clean or justified, offline."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.processes import ROOT


def _audit():
    spec = importlib.util.spec_from_file_location("audit", ROOT / "tools" / "audit.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


audit = _audit()


def finding(test: str, path: str, line: int = 1) -> dict:
    return {"test_id": test, "filename": path, "line_number": line, "issue_severity": "LOW",
            "issue_text": "x"}  # fmt: skip


def test_bandit_over_the_package_has_no_unjustified_finding_and_no_stale_exception():
    exceptions = audit.load_exceptions()
    unjustified, stale = audit.judge_bandit(audit.run_bandit(), exceptions["bandit"])
    assert [f"{f['test_id']} {f['filename']}:{f['line_number']} {f['issue_text']}" for f in unjustified] == []
    assert stale == []


def test_an_entry_with_a_path_covers_that_file_only_and_unused_entries_are_stale():
    accepted = [
        {"test": "B608", "path": "harness/store/sqlite.py", "reason": "constants"},
        {"test": "B101", "reason": "invariants"},
        {"test": "B602", "path": "harness/drill/run.py", "reason": "by design"},
    ]
    findings = [
        finding("B608", "harness/store/sqlite.py"),
        finding("B608", "harness/cli/capture.py", 7),
        finding("B101", "harness/anything.py"),
    ]
    unjustified, stale = audit.judge_bandit(findings, accepted)
    assert [(f["test_id"], f["filename"]) for f in unjustified] == [("B608", "harness/cli/capture.py")]
    assert [e["test"] for e in stale] == ["B602"]


def test_every_exception_needs_a_reason(tmp_path: Path):
    bad = tmp_path / "audit-exceptions.toml"
    bad.write_text('[[bandit]]\ntest = "B101"\nreason = " "\n')
    with pytest.raises(ValueError, match="entry 1 has no reason"):
        audit.load_exceptions(bad)
    bad.write_text('[[pip_audit]]\nid = "PYSEC-2024-1"\nreason = "not reachable"\n')
    with pytest.raises(ValueError, match="has no package"):
        audit.load_exceptions(bad)
