"""One certification from its options to a finished `Run` and its reports (used by the CLI and pytest).

Active: the suite of the spec's family builds cases and sends them to the target (directly, or through a
running proxy channel). Passive: captured exchanges are judged instead (harness.certify.passive). Both end
with the waivers applied and the reports written.
"""

from __future__ import annotations

import random
import shlex
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from harness import __version__
from harness.certify import report, waivers
from harness.certify.engine import Suite, execute
from harness.certify.results import Run
from harness.certify.targets import Address, open_target, parse_target, through
from harness.client_tls import TLSOptions
from harness.spec.model import Interface


def suite_for(interface: Interface) -> Suite:
    """The case generator and judge of the interface's family."""
    family = interface.family
    if family == "medins":
        from harness.certify.medins import MedinsSuite

        return MedinsSuite(interface)
    if family == "cdc":
        from harness.certify.cdc import CdcSuite

        return CdcSuite(interface)
    if family == "hl7v3":
        from harness.certify.hl7v3 import Hl7v3Suite

        return Hl7v3Suite(interface)
    if family == "fhir":
        from harness.certify.fhir import FhirSuite

        return FhirSuite(interface)
    if family == "hl7v2":
        from harness.certify.hl7v2 import Hl7v2Suite

        return Hl7v2Suite(interface)
    raise ValueError(f"no certification suite for the {family} family")


@dataclass(slots=True)
class Options:
    operations: set[str] | None = None
    checks: set[str] | None = None
    seed: int | None = None
    examples: int = 2
    invalid_examples: int = 1
    timeout: float = 30.0
    tls: TLSOptions | None = None
    """Client TLS for the target (its CA, a client certificate for mutual TLS); None: the defaults."""
    waivers: list[waivers.Waiver] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        return {
            "operations": sorted(self.operations) if self.operations else None,
            "checks": sorted(self.checks) if self.checks else None,
            "examples": self.examples,
            "invalid_examples": self.invalid_examples,
            "timeout_s": self.timeout,
        }


def active(
    interface: Interface,
    target: str,
    options: Options,
    *,
    through_config: str | None = None,
    channel: str | None = None,
    log=None,
) -> Run:
    """Certify a live target; raises TargetError for an unusable target or proxy config."""
    address = parse_target(target, interface.family)
    send_to, via = address, None
    if through_config:
        send_to, via = through(through_config, address, interface.family, channel)
    seed = options.seed if options.seed is not None else random.SystemRandom().randrange(10**9)
    run = Run(
        interface,
        "active",
        str(address),
        seed=seed,
        through=via,
        harness_version=__version__,
        options=options.describe(),
    )
    run.command = command(interface, address, seed, through_config, channel, options)
    sender = open_target(send_to, timeout=options.timeout, tls=options.tls)
    try:
        execute(
            run,
            suite_for(interface),
            sender,
            seed=seed,
            operations=options.operations,
            checks=options.checks,
            examples=options.examples,
            invalid_examples=options.invalid_examples,
            log=log,
        )
    finally:
        sender.close()
    return finish(run, options)


def finish(run: Run, options: Options) -> Run:
    run.finished = datetime.now().astimezone()
    waivers.apply(run, options.waivers)
    return run


def command(
    interface: Interface,
    address: Address,
    seed: int,
    through_config: str | None,
    channel: str | None,
    options: Options,
) -> str:
    """The command line that sends the same cases again (the evidence adds --operation and --check)."""
    parts = ["harness", "certify", "--spec", str(interface.path), "--target", str(address)]
    if through_config:
        parts += ["--through", through_config] + (["--channel", channel] if channel else [])
    if options.examples != 2:
        parts += ["--examples", str(options.examples)]
    if options.invalid_examples != 1:
        parts += ["--invalid-examples", str(options.invalid_examples)]
    tls = options.tls
    if tls is not None:
        given = {"--ca": tls.ca, "--cert": tls.cert, "--key": tls.key, "--server-name": tls.server_name}
        flags = [p for option, value in given.items() if value for p in (option, value)]
        if not tls.verify:
            flags.append("--insecure")
        parts += flags or (["--tls"] if address.scheme == "mllp" else [])
    return " ".join(shlex.quote(p) for p in parts) + f" --seed {seed}"


@dataclass(slots=True)
class Written:
    html: Path | None = None
    json: Path | None = None
    junit: Path | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {
            k: str(v) if v else None
            for k, v in (("html", self.html), ("json", self.json), ("junit", self.junit))
        }


def write_reports(
    run: Run,
    *,
    out: Path | None,
    html: Path | None = None,
    json_path: Path | None = None,
    junit: Path | None = None,
) -> Written:
    """Write the reports asked for; `out` (a folder) gets all three under a name from the run."""
    written = Written(html, json_path, junit)
    if out is not None:
        stem = f"certify-{run.interface.family}-{run.started:%Y%m%d-%H%M%S}"
        written.html = written.html or out / f"{stem}.html"
        written.json = written.json or out / f"{stem}.json"
        written.junit = written.junit or out / f"{stem}.xml"
    for path, render in ((written.html, report.render_html), (written.json, report.render_json),
                         (written.junit, report.render_junit)):  # fmt: skip
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(render(run), encoding="utf-8")
    return written
