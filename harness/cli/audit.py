"""`harness audit list|verify`: read and check a store's audit chain (and its JSON-lines copy).

`verify` exits 0 when the chain is whole (and the copy matches it), 1 naming the first changed,
removed, inserted or reordered entry by sequence, 2 when the store or file cannot be read. It prints
the head hash: written down elsewhere (a ticket, another host) it is the anchor `--anchor` checks later.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from harness.cli._common import EXIT_CHECKS_FAILED, fail_usage
from harness.cli._options import DEFAULT_STORE, StoreOpt
from harness.cli._store_filter import store_errors
from harness.cli.capture import SinceOpt, UntilOpt
from harness.terminal_text import json_line, visible

FileOpt = Annotated[
    Path | None,
    typer.Option(
        "--file",
        metavar="FILE",
        help="The JSON-lines copy to check against the store. Default: $HARNESS_AUDIT_FILE when set.",
    ),
]


def _iso(text: str | None) -> str | None:
    if text is None:
        return None
    from harness.audit.chain import utc_text
    from harness.store import parse_time

    try:
        return utc_text(parse_time(text))
    except ValueError as exc:
        raise fail_usage(f"{text!r}: {exc}") from None


def _open(store: str):
    from harness.store import Store

    with store_errors(Path(store)):
        return Store(store, create=False)


def _local(iso: str) -> str:
    moment = datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _actor_text(actor: dict) -> str:
    text = str(actor.get("user", "?"))
    if actor.get("sudo_user"):
        text += f" (sudo from {actor['sudo_user']})"
    if actor.get("token"):
        text += f" token {actor['token']}"
    return text


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    audit_app = typer.Typer(
        help="The audit trail: who exported, unmasked, replayed or changed faults, and when.",
        no_args_is_help=True,
    )
    app.add_typer(audit_app, name="audit")

    @audit_app.command("list")
    def list_(
        store: StoreOpt = DEFAULT_STORE,
        since: SinceOpt = None,
        until: UntilOpt = None,
        action: Annotated[
            list[str] | None,
            typer.Option(
                "--action",
                "-a",
                help="Only this action (repeatable): capture.export, replay, fault.add, ...; a prefix ending "
                "in '.' (fault.) takes the family.",
            ),
        ] = None,  # fmt: skip
        unmasked: Annotated[bool, typer.Option("--unmasked", help="Only output written unmasked.")] = False,
        as_json: Annotated[
            bool, typer.Option("--json", help="One JSON entry a line, hashes included.")
        ] = False,
    ) -> None:
        """The audit entries of a store, oldest first: time, who, from where, what, on what."""
        from harness.audit.table import AuditTable

        wanted = action or []

        def chosen(entry) -> bool:
            if wanted and not any(
                entry.action == a or (a.endswith(".") and entry.action.startswith(a)) for a in wanted
            ):
                return False
            return not unmasked or bool(entry.details.get("unmasked"))

        with _open(store) as db, store_errors(Path(store)):
            shown = 0
            for entry in AuditTable(db).entries(since=_iso(since), until=_iso(until)):
                if not chosen(entry):
                    continue
                shown += 1
                if as_json:
                    typer.echo(json_line(entry.to_json()))
                    continue
                details = json.dumps(entry.details, ensure_ascii=False, sort_keys=True)
                if len(details) > 160:
                    details = details[:157] + "..."
                who = f"{_actor_text(entry.actor)}@{entry.host}"
                typer.echo(
                    f"{entry.seq:>6}  {_local(entry.time)}  {visible(who)}  {visible(entry.action)}  "
                    f"{visible(entry.target)}  {visible(details)}"
                )
        if not shown and not as_json:
            typer.secho("no audit entries matched", err=True, fg=typer.colors.YELLOW)

    @audit_app.command("verify")
    def verify(
        store: StoreOpt = DEFAULT_STORE,
        file: FileOpt = None,
        anchor: Annotated[
            str | None,
            typer.Option(
                "--anchor",
                metavar="HASH",
                help="A head hash printed by an earlier verify and kept elsewhere: it must still be in the "
                "chain.",
            ),
        ] = None,  # fmt: skip
        as_json: Annotated[bool, typer.Option("--json", help="The verdict as one JSON object.")] = False,
    ) -> None:
        """Check the store's audit chain, and its JSON-lines copy: exit 0 whole, 1 with the first problem.

        Detects an entry changed, removed, inserted or reordered in the store or the copy, and a copy
        that differs from the store. Does not detect the whole chain rewritten from some entry on by
        someone who can write the store, unless the copy lives where they cannot write or the head
        hash printed here was kept elsewhere (--anchor).
        """
        from harness.audit import chain, jsonl
        from harness.audit.log import file_path
        from harness.audit.table import AuditTable

        with _open(store) as db, store_errors(Path(store)):
            entries = list(AuditTable(db).entries())
            store_id = db.store_id
        verdict = chain.verify(entries, anchor=anchor.strip().lower() if anchor else None)
        problems = list(verdict.problems)
        copy_path = file_path(file)
        copy_info: dict | None = None
        if copy_path is not None:
            if not copy_path.exists():
                if file is not None:
                    raise fail_usage(f"--file {file}: no such file")
                problems_copy: list = []
                lines: list = []
                bad: list[str] = []
            else:
                try:
                    lines, bad = jsonl.read(copy_path)
                except OSError as exc:
                    raise fail_usage(f"audit file {copy_path}: {exc.strerror or exc}") from None
                problems_copy = list(chain.verify_copy(lines).problems)
            for text in bad:
                problems_copy.insert(0, chain.Problem("unreadable", None, None, text))
            report = chain.compare(entries, lines, str(copy_path), store_id)
            problems_copy += report.problems
            copy_info = {"file": str(copy_path), "lines": len(lines), "this_store": report.this_store}
            problems += problems_copy
        head = verdict.head
        result = {
            "store": str(store),
            "store_id": store_id,
            "ok": not problems,
            "entries": verdict.entries,
            "head_seq": head.seq if head else 0,
            "head_hash": head.hash if head else chain.GENESIS,
            "copy": copy_info,
            "problems": [
                {"kind": p.kind, "seq": p.seq, "position": p.position, "message": p.message} for p in problems
            ],
        }
        if as_json:
            typer.echo(json.dumps(result, ensure_ascii=False))
        else:
            for p in problems:
                typer.secho(f"FAIL: {visible(p.message)}", fg=typer.colors.RED)
            state = "whole" if not verdict.problems else "BROKEN"
            typer.echo(f"audit chain of {store}: {verdict.entries} entries, {state}")
            if copy_info is not None:
                copy_state = "matches" if not problems[len(verdict.problems) :] else "does NOT match"
                typer.echo(
                    f"copy {copy_info['file']}: {copy_info['this_store']} entries of this store "
                    f"({copy_info['lines']} lines), {copy_state}"
                )
            typer.echo(f"head: seq {result['head_seq']} sha256 {result['head_hash']}")
            if not problems:
                typer.echo(
                    "keep the head hash elsewhere (a ticket, another host) and check it later with --anchor"
                )
        if problems:
            raise typer.Exit(EXIT_CHECKS_FAILED)
