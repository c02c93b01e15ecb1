"""Replay and compare write masked reports and dry runs by default: no original identifier in them, the
same verdicts as unmasked; --unmasked gives the originals and is in the audit log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date

from harness.audit.table import AuditTable
from harness.store import Store
from tests.mask.support import leaks, person_id
from tests.processes import ROOT
from tests.replay.traffic import capture_through_proxy, start_mock

PEOPLE = [
    ("张伟", person_id(seq=123), "13812345678"),
    ("李秀英", person_id("530111", date(1990, 5, 1), 456), "13987654321"),
]
ORIGINALS = [value for person in PEOPLE for value in person]


def adt(i: int, name: str, idcard: str, phone: str) -> bytes:
    return (
        f"MSH|^~\\&|HIS|HOSP|HC|HOSP|20261124233000||ADT^A08^ADT_A01|MSG{i:05d}|P|2.5|||||CHN|UNICODE UTF-8\r"
        f"EVN|A08|20261124233000\r"
        f"PID|1||{idcard}^^^HOSP^MR||{name[0]}^{name[1:]}||19850307|M|||翠湖南路1号^^昆明^云南||{phone}\r"
        f"PV1|1|O|CLINIC^01\r"
    ).encode()


def harness(*args: str, key: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARNESS_")}
    if key:
        env["HARNESS_MASK_KEY"] = "replay-report-masking-key-0123456789"
    return subprocess.run(
        [sys.executable, "-m", "harness", *args], cwd=ROOT, capture_output=True, timeout=90, env=env
    )


def test_reports_and_dry_runs_are_masked_unless_unmasked(processes, tmp_path):
    store = tmp_path / "cap.db"
    up = start_mock(processes, tmp_path / "up.log")
    messages = [adt(i, *PEOPLE[i % 2]) for i in range(6)]
    capture_through_proxy(processes, tmp_path, up, messages, store)
    target = start_mock(processes, tmp_path / "target.log", "--answer-rule", f"PID-3.1={PEOPLE[1][1]}:AE")

    dry = harness("replay", "--store", str(store), "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert len(dry.stdout.splitlines()) == 6 and not leaks(dry.stdout, ORIGINALS)
    plain = harness("replay", "--store", str(store), "--dry-run", "--json", "--unmasked", key=False)
    assert PEOPLE[0][1].encode() in plain.stdout  # --unmasked: the messages as captured
    refused = harness("replay", "--store", str(store), "--dry-run", key=False)
    assert (
        refused.returncode == 2 and b"--unmasked" in refused.stderr and not leaks(refused.stdout, ORIGINALS)
    )

    report = tmp_path / "r.json"
    html = tmp_path / "r.html"
    run = harness(
        "replay", "--store", str(store), "--to", f"127.0.0.1:{target}", "--json",
        "--report-json", str(report), "--report-html", str(html),
    )  # fmt: skip
    assert run.returncode == 1, run.stderr
    summary = json.loads(run.stdout.splitlines()[-1])
    assert (summary["new_error"], summary["exact"] + summary["equivalent"]) == (3, 3)
    for output in (report.read_bytes(), html.read_bytes(), run.stdout, run.stderr):
        assert not leaks(output, ORIGINALS)

    masked = harness("compare", "capture", str(summary["run_id"]), "--store", str(store), "--json")
    unmasked = harness(
        "compare", "capture", str(summary["run_id"]), "--store", str(store), "--json", "--unmasked"
    )
    counts = ("exact", "equivalent", "different", "missing", "new_error")
    assert [json.loads(masked.stdout)[k] for k in counts] == [json.loads(unmasked.stdout)[k] for k in counts]

    with Store(store, create=False) as db:
        entries = [e for e in AuditTable(db).entries() if e.action in ("replay", "compare")]
    assert [(e.action, e.details["unmasked"], e.details.get("dry_run", False)) for e in entries] == [
        ("replay", False, True),
        ("replay", True, True),
        ("replay", False, False),
        ("compare", False, False),
        ("compare", True, False),
    ]
    assert entries[2].details["run_id"] == summary["run_id"] and entries[2].details["sent"] == 6
    assert entries[2].details["reports"] == [str(html.resolve()), str(report.resolve())]
