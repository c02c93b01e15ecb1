"""`harness demo`'s certification step: a short contract suite of the medical-insurance simulator.

A fresh `harness mock medins` is certified against specs/medins for one outpatient visit's transactions
(9001 → 1101 → 2201 → 2203 → 2204 → 2206 → 2207 → 2208) and the outpatient flow, one generated case each:
every check the spec gives those operations, in a few seconds. The reports go to the demo's output folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from harness.demo.context import DemoContext, DemoFailure, shown

OPERATIONS = "9001,1101,2201,2203,2204,2206,2207,2208,outpatient"


class CertifyMedins:
    name = "certify the medical-insurance simulator against specs/medins (harness certify)"

    def __init__(self, out: Path) -> None:
        self.out = out

    def run(self, ctx: DemoContext) -> None:
        host, port = ctx.start_child(
            "mock medins (certified)", ["mock", "medins", "--listen", "127.0.0.1:0", "-q"]
        )
        target = f"http://{host}:{port}"
        spec, reports = "medins", shown(self.out)  # the specs/medins shipped with harness
        ctx.echo(
            f"  harness certify --spec {spec} --target {target} --operation {OPERATIONS} --examples 1"
            f" --out {reports}"
        )
        args = ["--target", target, "--operation", OPERATIONS, "--examples", "1", "--out", reports, "--json"]
        proc = subprocess.run(
            [sys.executable, "-m", "harness", "certify", "--spec", spec, *args],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "HYPOTHESIS_STORAGE_DIRECTORY": str(self.out / ".hypothesis")},  # not ./
        )
        if proc.returncode not in (0, 1) or not proc.stdout.startswith("{"):
            raise DemoFailure(f"harness certify exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
        summary = json.loads(proc.stdout)
        ctx.echo(
            f"  {summary['verdict']}: {summary['passed']} of {summary['checks']} checks passed on "
            f"{summary['operations']} transactions and {summary['flows']} flow ({summary['cases']} cases)"
        )
        html = summary["reports"]["html"]
        ctx.echo(f"  certification report: {shown(Path(html))}")
        if summary["verdict"] != "PASS":
            raise DemoFailure(f"the simulator did not pass its own suite ({summary['verdict']}): see {html}")
        ctx.children.pop("mock medins (certified)").stop()
