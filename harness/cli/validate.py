"""`harness validate`: HL7 v2 conformance of message files or of a capture store.

Moves bytes only: messages come from harness.hl7v2.files or harness.store, the checks from
harness.hl7v2.validation, the output from its report module.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from harness.cli._common import EXIT_CHECKS_FAILED, EXIT_OK, fail_usage
from harness.cli._mask_options import MaskKeyOpt, MaskOpt, MaskPolicyOpt, UnmaskedOpt, masker
from harness.cli._options import OptionalStoreOpt
from harness.cli._store_filter import (
    RUNS_HELP,
    check_times,
    parse_runs,
    scope_text,
    split_outcomes,
    store_errors,
    traffic_filter,
)
from harness.cli._store_key import StoreKeyEnvOpt, StoreKeyFileOpt
from harness.terminal_text import visible

FORMATS = ("text", "json", "junit", "html")
SEVERITIES = ("error", "warning", "info")


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    @app.command("validate")
    def validate(
        paths: Annotated[
            list[Path] | None, typer.Argument(help="Message files or folders (one or many messages each).")
        ] = None,
        profile: Annotated[
            Path | None,
            typer.Option(
                "--profile",
                "-p",
                metavar="PATH",
                help="Interface profile: YAML (specs/hl7v2/) or HL7 XML; a bare name (yunnan-his-adt) means "
                "the one shipped with harness.",
            ),
        ] = None,
        version: Annotated[
            str | None,
            typer.Option(
                "--version", "-V", help="Validate as this HL7 version (2.1 ... 2.8.2) instead of MSH-12."
            ),
        ] = None,
        charset: Annotated[
            str | None,
            typer.Option("--charset", help="Decode with this charset instead of MSH-18 (e.g. GBK)."),
        ] = None,
        fmt: Annotated[str, typer.Option("--format", "-f", help="text, json, junit or html.")] = "text",
        json_out: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False,
        out: Annotated[
            Path | None, typer.Option("--out", "-O", help="Write the report here, not stdout.")
        ] = None,
        jobs: Annotated[int, typer.Option("--jobs", "-j", help="Worker processes (0: one per CPU).")] = 1,
        store: OptionalStoreOpt = None,
        channel: Annotated[
            list[str] | None, typer.Option("--channel", "-c", help="Store: channel (repeatable).")
        ] = None,
        since: Annotated[
            str | None, typer.Option("--since", help="Store: from this time (ISO 8601 or -2h).")
        ] = None,
        until: Annotated[str | None, typer.Option("--until", help="Store: up to this time.")] = None,
        types: Annotated[
            list[str] | None,
            typer.Option("--type", "-t", help="Store: ADT^A01, or ADT for all (repeatable)."),
        ] = None,
        outcomes: Annotated[
            list[str] | None,
            typer.Option("--outcome", "-o", help="Store: ok, nak, timeout, ... (repeatable)."),
        ] = None,
        responses: Annotated[
            bool, typer.Option("--responses", help="Store: validate the captured responses (ACKs) too.")
        ] = False,
        waiver_files: Annotated[
            list[Path] | None,
            typer.Option(
                "--waivers",
                "-w",
                help="YAML file of accepted findings with reasons (repeatable; a profile may add more).",
            ),
        ] = None,
        fail_on: Annotated[
            str,
            typer.Option(
                "--fail-on",
                help="Exit 1 when an unwaived finding of this severity or worse: error or warning.",
            ),
        ] = "error",
        min_severity: Annotated[
            str | None,
            typer.Option(
                "--min-severity",
                help="Findings listed from this severity: error, warning or info (default: warning for text, "
                "info for HTML and JUnit; JSON keeps every finding).",
            ),
        ] = None,
        runs_option: Annotated[
            str | None, typer.Option("--runs", metavar="all|N[,N]", help=f"Store: {RUNS_HELP}")
        ] = None,
        show_info: Annotated[bool, typer.Option("--info", help="Text: list info findings too.")] = False,
        max_listed: Annotated[
            int, typer.Option("--max-listed", help="Text/HTML: list at most this many messages.")
        ] = 50,
        progress: Annotated[
            bool | None,
            typer.Option("--progress/--no-progress", help="Progress bar on stderr (default: on a TTY)."),
        ] = None,
        mask: MaskOpt = False,
        mask_policy: MaskPolicyOpt = None,
        mask_key_file: MaskKeyOpt = None,
        unmasked: UnmaskedOpt = False,
        store_key_file: StoreKeyFileOpt = None,
        store_key_env: StoreKeyEnvOpt = None,
    ) -> None:
        """Check HL7 v2 messages against the standard (and a profile): every finding, with its location.

        Over a store, the values findings quote are masked (default policy) unless --unmasked, and the run
        is recorded in the audit log; over files, only with --mask or --mask-policy.

        Exit 0 when no message has an unwaived finding at the --fail-on severity (default error), 1 when any
        has, 2 on usage errors (including a bad profile or waiver file).
        """
        from harness.hl7v2 import reference
        from harness.hl7v2.validation import report, waivers
        from harness.hl7v2.validation.batch import validate_many
        from harness.hl7v2.validation.profile import ProfileError
        from harness.hl7v2.validation.profile import load as load_profile

        if json_out:
            fmt = "json"
        if fmt not in FORMATS:
            raise fail_usage(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
        if fail_on not in report.FAIL_ON:
            raise fail_usage(f"--fail-on {fail_on!r}: expected one of {', '.join(report.FAIL_ON)}")
        if min_severity is not None and min_severity not in SEVERITIES:
            raise fail_usage(f"--min-severity {min_severity!r}: expected one of {', '.join(SEVERITIES)}")
        if version is not None:
            try:
                version = reference.normalise_version(version)
            except reference.UnsupportedVersion as exc:
                raise fail_usage(str(exc)) from None
        if bool(paths) == bool(store):
            raise fail_usage("give message files/folders or --store FILE (one of the two)")
        store_filters = any([channel, since, until, types, outcomes, responses, runs_option])
        if store_filters and not store:
            raise fail_usage("--channel/--since/--until/--type/--outcome/--responses/--runs need --store")
        runs = parse_runs(runs_option)
        if jobs < 0:
            raise fail_usage("--jobs must be 0 (one per CPU) or more")
        loaded_profile = None
        if profile is not None:
            from harness.spec import resolve

            profile = resolve(profile)
            try:
                loaded_profile = load_profile(profile)  # fail early, with the file and key, before any work
            except ProfileError as exc:
                raise fail_usage(str(exc)) from None
        waiver_paths = [str(p) for p in waiver_files or []] + list(getattr(loaded_profile, "waivers", ()))
        try:
            waiver_set = waivers.load(waiver_paths)
        except waivers.WaiverError as exc:
            raise fail_usage(str(exc)) from None
        try:
            reference.load(version or "2.5")  # compile/cache once here, not in every worker
        except Exception as exc:  # noqa: BLE001 - a broken hl7apy install is an environment error
            raise fail_usage(f"cannot load the HL7 reference tables: {exc}") from None

        chosen = None
        if store or mask or mask_policy is not None:
            data_paths = [store] if store else paths or []
            chosen = masker(mask, mask_policy, mask_key_file, data_paths, unmasked=unmasked)
        if store:
            from harness.cli._audit import preflight

            preflight(store)
        unreadable: list[dict] = []
        if store:
            items, total, source_name = _store_items(
                store, channel, since, until, types, outcomes, responses, runs
            )
        else:
            items, total, source_name, unreadable = _file_items(paths or [])
        watch = None
        if chosen is not None:
            from harness.mask.findings import Watch

            items = watch = Watch(chosen, items)

        show_progress = progress if progress is not None else sys.stderr.isatty()
        messages: list[dict] = []
        summary = report.Summary(fail_on)

        def take(msg: dict) -> None:
            waiver_set.apply(msg)
            messages.append(msg)
            summary.add(msg)

        for msg in unreadable:
            take(msg)
        started = time.perf_counter()
        results = validate_many(
            items, version=version, profile_path=str(profile) if profile else None, charset=charset, jobs=jobs
        )
        if show_progress:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            with Progress(
                TextColumn("validating"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("messages"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            ) as bar:
                task = bar.add_task("validate", total=total + len(unreadable), completed=len(unreadable))
                for i, msg in enumerate(results, len(unreadable) + 1):
                    take(msg)
                    if i % 50 == 0:
                        bar.update(task, completed=i)
                bar.update(task, completed=len(messages))
        else:
            for msg in results:
                take(msg)
        elapsed = time.perf_counter() - started
        if not messages:
            raise fail_usage(f"no HL7 v2 messages found in {source_name}")
        if watch is not None:
            for msg in messages:
                watch.mask_message(msg)
        s = summary.as_dict(elapsed)
        run = _run_meta(source_name, loaded_profile, waiver_paths, fail_on, min_severity or "info")
        run["waivers"] = waiver_set.report()
        if fmt == "json":
            text = report.render_json(messages, s, run)
        elif fmt == "junit":
            text = report.render_junit(messages, s)
        elif fmt == "html":
            text = report.render_html(
                messages,
                s,
                max_listed=max(max_listed, 2000),
                run=run,
                waivers=run["waivers"],
                min_severity=min_severity or "info",
            )
        else:
            text = report.render_text(
                messages, s, show_info=show_info, max_listed=max_listed, min_severity=min_severity
            )
        if out is not None:
            from harness.private_files import write_private

            try:
                write_private(out, text, force=True)  # a report holds message content: 0600
            except OSError as exc:
                raise fail_usage(f"--out {out}: {exc.strerror or exc}") from None
            typer.echo(f"{report.verdict_line(s)}; report: {out}", err=True)
        else:
            sys.stdout.write(visible(text, lines=True) if fmt == "text" else text)
            sys.stdout.flush()
        if store:
            from harness.cli._audit import audited, masking

            audited(
                store, "validate", str(store),
                {"messages": len(messages), "format": fmt, "out": str(out.resolve()) if out else None,
                 **masking(chosen)},
            )  # fmt: skip
        raise typer.Exit(EXIT_CHECKS_FAILED if s["failed"] else EXIT_OK)


def _run_meta(selection: str, profile, waiver_paths: list[str], fail_on: str, min_severity: str) -> dict:
    """What a report says about its run: selection, profile, waivers, thresholds, date, version."""
    import datetime as dt

    from harness import __version__

    profiles = []
    if profile is not None:
        profiles.append({"name": profile.name, "source": profile.source, "description": profile.description})
    return {
        "selection": selection,
        "profiles": profiles,
        "waiver_files": waiver_paths,
        "fail_on": fail_on,
        "min_severity": min_severity,
        "generated": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "harness_version": __version__,
    }


def _file_items(paths: list[Path]):
    from harness.hl7v2.files import HL7FileError, iter_messages

    problems: list[HL7FileError] = []
    try:
        found = list(iter_messages(paths, on_error=problems.append))
    except HL7FileError as exc:
        raise fail_usage(str(exc)) from None
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise fail_usage(f"no such file or folder: {', '.join(str(p) for p in missing)}")
    unreadable = [
        {
            "source": problem.source,
            "index": 0,
            "control_id": None,
            "message_type": None,
            "structure": None,
            "version": None,
            "valid": False,
            "findings": [
                {
                    "severity": "error",
                    "code": "HL7-PARSE-FILE",
                    "location": "file" if problem.line is None else f"line {problem.line}",
                    "position": {},
                    "message": str(problem),
                    "expected": "HL7 v2 messages starting with MSH",
                    "actual": None,
                }
            ],
        }
        for problem in problems
    ]
    items = [(m.source, m.index, m.payload, None) for m in found]
    return items, len(items), ", ".join(str(p) for p in paths), unreadable


def _store_items(path: str, channel, since, until, types, outcomes, responses: bool, runs=None):
    import sqlite3

    from harness.store import ExchangeFilter, Store, StoreError
    from harness.store.location import exists, label

    if not exists(path):
        raise fail_usage(f"--store {path}: no such file")
    name = label(path)
    check_times(since, until)
    outcome_names = split_outcomes(outcomes)
    flt = ExchangeFilter(
        channel=channel or None,
        since=since,
        until=until,
        message_type=types or None,
        outcomes=outcome_names or None,
        kind="hl7v2",
        **traffic_filter(runs),
    )
    try:
        st = Store(path, create=False)
        total = st.count(flt) * (2 if responses else 1)
    except (StoreError, ValueError) as exc:
        raise fail_usage(f"--store {path}: {exc}") from None
    except sqlite3.Error:
        with store_errors(path):
            raise

    def gen():
        try:
            with store_errors(path):
                yield from rows()
        finally:
            st.close()

    def rows():
        for ex in st.query(flt):
            yield (f"{name}#{ex.id}", ex.id or 0, ex.request or b"", ex.charset)
            if responses and ex.response:
                yield (f"{name}#{ex.id}:response", ex.id or 0, ex.response, ex.charset)

    return gen(), total, f"{path} ({scope_text(runs)})"
