"""`harness compare RUN_A RUN_B --store FILE`: two runs (or a run and the capture), exchange by exchange."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.cli._common import fail_usage
from harness.cli._mask_options import MaskKeyOpt, MaskOpt, MaskPolicyOpt, UnmaskedOpt, masker
from harness.cli._options import DEFAULT_STORE, StoreOpt
from harness.cli._store_filter import store_errors
from harness.cli._store_key import StoreKeyEnvOpt, StoreKeyFileOpt


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    @app.command("compare")
    def compare(
        run_a: Annotated[
            str, typer.Argument(metavar="RUN_A", help="Baseline: a run id, or 'capture' (or 0).")
        ],
        run_b: Annotated[str, typer.Argument(metavar="RUN_B", help="The run to judge against RUN_A.")],
        store_path: StoreOpt = DEFAULT_STORE,
        ignore: Annotated[
            list[str] | None, typer.Option(help="Extra field to ignore, e.g. MSA-3, ERR*:timestamps.")
        ] = None,
        report_html: Annotated[Path | None, typer.Option(help="Write the HTML report here.")] = None,
        report_junit: Annotated[Path | None, typer.Option(help="Write JUnit XML here.")] = None,
        report_json: Annotated[Path | None, typer.Option(help="Write the JSON report here.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
        mask: MaskOpt = False,
        mask_policy: MaskPolicyOpt = None,
        mask_key_file: MaskKeyOpt = None,
        unmasked: UnmaskedOpt = False,
        store_key_file: StoreKeyFileOpt = None,
        store_key_env: StoreKeyEnvOpt = None,
    ) -> None:
        """Pair the exchanges of RUN_B with those of RUN_A by original message and classify each reply
        (exact | equivalent | different | missing | new_error), e.g. before and after an interface upgrade.

        Replies and differences are masked in the reports and on the terminal unless --unmasked; every
        comparison is recorded in the audit log. Exit 0 when every exchange is exact or equivalent, 1
        otherwise, 2 on usage errors.
        """
        from harness.cli._audit import audited, masking, preflight
        from harness.cli.replay import emit_report, written_reports
        from harness.replay.compare import parse_ignore
        from harness.replay.report import CAPTURE, collect, parse_run_ref
        from harness.store import Store, StoreError

        try:
            a = parse_run_ref(run_a)
            b = parse_run_ref(run_b)
            rules = tuple(parse_ignore(i) for i in ignore or ())
        except ValueError as exc:
            raise fail_usage(str(exc)) from None
        if b == CAPTURE:
            raise fail_usage(
                "RUN_B must be a run id; put 'capture' first to compare a run with the originals"
            )
        from harness.store.location import exists

        if not exists(store_path):
            raise fail_usage(f"store {store_path}: no such file")
        chosen = masker(mask, mask_policy, mask_key_file, [store_path], unmasked=unmasked)
        try:
            with store_errors(store_path), Store(store_path, create=False) as store:
                preflight(store)
                report = collect(store, a, int(b), rules, masker=chosen)
                code = emit_report(
                    report, as_json=as_json, html=report_html, junit=report_junit, json_path=report_json
                )
                audited(
                    store, "compare", f"{run_a} vs {run_b}",
                    {"baseline": run_a, "run": run_b, "summary": report.summary(),
                     "reports": written_reports(report_html, report_junit, report_json), **masking(chosen)},
                )  # fmt: skip
        except (StoreError, ValueError) as exc:
            raise fail_usage(str(exc)) from None
        raise typer.Exit(code)
