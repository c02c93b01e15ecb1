"""`harness demo`: the main job on embedded defaults, as a list of steps sharing one context.

HL7 v2 fixtures go through `harness proxy` (with two fault rules) to `harness mock mllp`; one
medical-insurance visit and a FHIR Patient go through HTTP channels to `harness mock medins` and
`harness mock fhir`; a fresh medins simulator is certified against specs/medins. Every file the run
writes (proxy configurations, capture stores, the certification report) goes to one output folder,
by default ./harness-demo under the working directory, never into the installation. Every child is
stopped at the end, also after a failure or Ctrl-C.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from harness.datafiles import data_dir
from harness.demo.certify import CertifyMedins
from harness.demo.context import Child, DemoContext, DemoFailure, Step, shown
from harness.demo.http_chain import http_steps
from harness.demo.mllp import (
    AddFaults,
    CaptureSummary,
    Judge,
    JudgeProxied,
    ProxyRun,
    SendFixtures,
    StartMockMLLP,
    StartProxy,
    StopChildren,
)

__all__ = [
    "AddFaults", "CaptureSummary", "CertifyMedins", "Child", "DemoContext", "DemoFailure", "Judge",
    "JudgeProxied", "ProxyRun", "SendFixtures", "StartMockMLLP", "StartProxy", "Step", "StopChildren",
    "default_steps", "run", "FIXTURES", "OUT",
]  # fmt: skip

FIXTURES = data_dir("fixtures") / "hl7v2"
OUT = Path("harness-demo")
"""The default output folder, relative to the working directory."""


def default_steps(out: Path) -> list[Step]:
    proxy = ProxyRun(out)
    return [
        StartMockMLLP(),
        StartProxy(proxy),
        AddFaults(proxy),
        SendFixtures(),
        StopChildren(),
        CaptureSummary(proxy),
        JudgeProxied(proxy),
        *http_steps(out),
        CertifyMedins(out),
    ]


def run(
    fixtures: Path = FIXTURES,
    *,
    out: Path = OUT,
    echo: Callable[[str], None] = print,
    steps: list[Step] | None = None,
    timeout: float = 10.0,
) -> int:
    """Run the steps in order; 0 when all succeeded, 1 on a failure, 130 on Ctrl-C."""
    ctx = DemoContext(fixtures=fixtures, echo=echo, timeout=timeout)
    out = out.absolute()
    writes = steps is None  # steps given by a caller bring their own folders
    if steps is None:
        steps = default_steps(out)
        echo(f"the demo writes its files to {shown(out)}/")
    try:
        for number, step in enumerate(steps, start=1):
            echo(f"[{number}/{len(steps)}] {step.name}")
            step.run(ctx)
    except DemoFailure as exc:
        echo(f"demo FAILED: {exc}")
        return 1
    except KeyboardInterrupt:
        echo("demo interrupted")
        return 130
    finally:
        ctx.stop_children()
    echo("demo OK" + (f": its files are in {shown(out)}/" if writes else ""))
    return 0
