"""`harness certify`: a spec becomes a contract suite, run against a target or judged over a capture."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from harness.cli import _tls_options as sending
from harness.cli._common import EXIT_CHECKS_FAILED, EXIT_OK, fail_usage
from harness.cli._mask_options import MaskKeyOpt, MaskOpt, MaskPolicyOpt, UnmaskedOpt, masker
from harness.cli._store_key import StoreKeyEnvOpt, StoreKeyFileOpt


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    @app.command("certify")
    def certify(
        spec: Annotated[
            Path,
            typer.Option(
                metavar="PATH",
                help="A spec folder (specs/medins, specs/hl7v3, specs/cdc, specs/fhir) or an HL7 v2 profile "
                "(specs/hl7v2/yunnan-his-adt.yaml); a bare name (medins, yunnan-his-adt) means the one "
                "shipped with harness.",
            ),
        ],
        target: Annotated[
            str | None,
            typer.Option(
                metavar="URL|HOST:PORT",
                help="Active: the system under test: http(s)://HOST:PORT, with a base path if any (HTTP "
                "families), or HOST:PORT (HL7 v2 over MLLP).",
            ),
        ] = None,
        store: Annotated[
            Path | None,
            typer.Option(
                "--store",
                "-s",
                metavar="PATH|URL",
                help="Passive: judge the exchanges captured in this store instead (never $HARNESS_STORE: "
                "giving it is what selects passive mode).",
            ),
        ] = None,
        through_config: Annotated[
            str | None,
            typer.Option(
                "--through",
                metavar="PROXY_CONFIG",
                help="Send through the running harness proxy of this config (the channel forwarding to "
                "--target, or --channel): the proxy captures the certification.",
            ),
        ] = None,
        channel: Annotated[
            str | None,
            typer.Option(help="The proxy channel to send through (--through) or to read (--store)."),
        ] = None,
        operation: Annotated[
            list[str] | None,
            typer.Option(
                help="Only these operations or flows (repeatable or comma-separated: 2201,2207,outpatient)."
            ),
        ] = None,
        check: Annotated[
            list[str] | None,
            typer.Option(help="Only these checks (repeatable or comma-separated: required,code,flow)."),
        ] = None,
        seed: Annotated[
            int | None, typer.Option(help="Seed of the generated cases (the report prints the one used).")
        ] = None,
        examples: Annotated[
            int, typer.Option(min=1, max=1000, help="Generated valid requests per operation (and flow runs).")
        ] = 2,
        invalid_examples: Annotated[
            int, typer.Option(min=1, max=100, help="Generated invalid requests per constraint.")
        ] = 1,
        waivers: Annotated[
            Path | None, typer.Option(help="Waiver file: checks accepted not to pass, each with a reason.")
        ] = None,
        since: Annotated[
            str | None, typer.Option(help="Passive: exchanges from this time (ISO or -2h).")
        ] = None,
        until: Annotated[str | None, typer.Option(help="Passive: exchanges up to this time.")] = None,
        out: Annotated[
            Path, typer.Option(help="Folder for the HTML, JSON and JUnit reports (names carry the time).")
        ] = Path("reports"),
        report_html: Annotated[Path | None, typer.Option(help="Write the HTML report here.")] = None,
        report_json: Annotated[Path | None, typer.Option(help="Write the JSON report here.")] = None,
        report_junit: Annotated[Path | None, typer.Option(help="Write the JUnit XML report here.")] = None,
        no_reports: Annotated[
            bool, typer.Option("--no-reports", help="Write no report files (only what is printed).")
        ] = False,
        timeout: Annotated[float, typer.Option(min=0.1, help="Seconds to wait for each answer.")] = 30.0,
        tls: sending.ClientTLSOpt = False,
        ca: sending.ClientCAOpt = None,
        cert: sending.ClientCertOpt = None,
        key: sending.ClientKeyOpt = None,
        server_name: sending.ServerNameOpt = None,
        insecure: sending.InsecureOpt = False,
        json_output: Annotated[
            bool, typer.Option("--json", help="Print one JSON summary object instead of the text lines.")
        ] = False,
        mask: MaskOpt = False,
        mask_policy: MaskPolicyOpt = None,
        mask_key_file: MaskKeyOpt = None,
        unmasked: UnmaskedOpt = False,
        store_key_file: StoreKeyFileOpt = None,
        store_key_env: StoreKeyEnvOpt = None,
    ) -> None:
        """Certify an interface against its spec and write a report an engineer signs.

        Passive reports show captured requests and replies masked (default policy) unless --unmasked, and
        the run is recorded in the audit log; active runs send invented people and need no masking.

        Active (--target): generated and example cases go to the system under test; valid requests must
        succeed and invalid ones be rejected the way the spec says. Passive (--store): captured traffic
        is judged instead, with the coverage of the operations seen. Exit 0 when the verdict is PASS, 1
        when it is FAIL or INCOMPLETE, 2 for a usage or environment error (a broken spec, a target that
        cannot be reached).
        """
        from harness import spec as specs
        from harness.certify import certification, report
        from harness.certify import waivers as waiver_files
        from harness.certify.cases import ALL_CHECKS
        from harness.certify.engine import progress
        from harness.certify.targets import TargetError, parse_target, reachable, through

        if (target is None) == (store is None):
            raise fail_usage("give either --target URL|HOST:PORT (active) or --store FILE (passive)")
        if store is not None and through_config:
            raise fail_usage("--through sends through a proxy: it goes with --target, not --store")
        if store is not None and (tls or ca or cert or key or server_name or insecure):
            raise fail_usage("TLS options are for sending: they go with --target, not --store")
        try:
            interface = specs.load(spec)
        except specs.SpecError as exc:
            raise fail_usage(f"--spec: {exc}") from None
        options = certification.Options(
            operations=_split(operation),
            checks=_split(check),
            seed=seed,
            examples=examples,
            invalid_examples=invalid_examples,
            timeout=timeout,
            tls=sending.client_tls(tls, ca, cert, key, server_name, insecure),
        )
        if options.checks:
            unknown = sorted(options.checks - set(ALL_CHECKS))
            if unknown:
                raise fail_usage(f"--check {', '.join(unknown)}: unknown; checks: {', '.join(ALL_CHECKS)}")
        if options.operations:
            known = set(interface.operations) | {"flow"}
            unknown = sorted(o for o in options.operations if o not in known and not _is_flow(interface, o))
            if unknown:
                names = list(interface.operations)
                shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
                raise fail_usage(f"--operation {', '.join(unknown)}: not in {spec} (operations: {shown})")
        if waivers is not None:
            try:
                options.waivers = waiver_files.load(waivers)
            except waiver_files.WaiverError as exc:
                raise fail_usage(str(exc)) from None
        if store is not None:
            from harness.certify import passive
            from harness.store import StoreError

            if not store.exists():
                raise fail_usage(f"--store {store}: no such capture store")
            from harness.cli._audit import preflight

            preflight(store)
            chosen = masker(mask, mask_policy, mask_key_file, [store], unmasked=unmasked)
            try:
                run = passive.certify(
                    interface, store, options, channel=channel, since=since, until=until, masker=chosen
                )
            except (StoreError, ValueError) as exc:
                raise fail_usage(f"--store {store}: {exc}") from None
        else:
            try:
                address = parse_target(target, interface.family)
                send_to = (
                    through(through_config, address, interface.family, channel)[0]
                    if through_config
                    else address
                )
            except TargetError as exc:
                raise fail_usage(str(exc)) from None
            problem = reachable(send_to, timeout=min(timeout, 5.0))
            if problem:
                what = "the proxy channel" if through_config else "--target"
                raise fail_usage(f"{what}: {problem}")
            try:
                run = certification.active(
                    interface, target, options, through_config=through_config, channel=channel, log=progress()
                )
            except TargetError as exc:
                raise fail_usage(str(exc)) from None
        written = certification.Written()
        if not no_reports:
            written = certification.write_reports(
                run,
                out=out if not (report_html or report_json or report_junit) else None,
                html=report_html,
                json_path=report_json,
                junit=report_junit,
            )
        if store is not None:
            from harness.cli._audit import audited, masking

            audited(
                store, "certify", str(spec),
                {"verdict": run.verdict, "channel": channel, "since": since, "until": until,
                 "reports": {k: str(v) for k, v in written.as_dict().items() if v}, **masking(chosen)},
            )  # fmt: skip
        if json_output:
            typer.echo(json.dumps({**run.summary(), "reports": written.as_dict()}, ensure_ascii=False))
        else:
            if progress() is not None:  # clear the progress line on the terminal
                typer.echo("\r\033[K", nl=False, err=True)
            typer.echo(report.verdict_line(run))
            for cell in run.failed_cells()[:20]:
                first = cell.evidence[0] if cell.evidence else None
                typer.echo(
                    f"  FAILED {cell.operation} {cell.check}: {cell.failures}/{cell.cases}"
                    + (f" - {first.title}: {first.finding}"[:220] if first else "")
                )
            for note in run.notes:
                typer.echo(f"  note: {note}")
            for kind, path in written.as_dict().items():
                if path:
                    typer.echo(f"{kind} report: {path}")
        raise typer.Exit(EXIT_OK if run.verdict == "PASS" else EXIT_CHECKS_FAILED)


def _split(values: list[str] | None) -> set[str] | None:
    out = {v.strip() for item in values or [] for v in item.split(",") if v.strip()}
    return out or None


def _is_flow(interface, name: str) -> bool:
    flows = ((interface.examples.body if interface.examples else {}) or {}).get("flows") or {}
    if interface.family == "hl7v2" and interface.examples is not None:
        mine = (interface.examples.get("profiles") or {}).get(interface.native.name) or {}
        flows = mine.get("flows") or {}
    return name.removeprefix("flow:") in flows
