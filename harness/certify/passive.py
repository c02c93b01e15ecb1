"""Passive certification: captured traffic judged against the spec, both directions, with coverage.

Each captured exchange of the spec's family (live traffic only, not replays) is read back from the capture
store and handed to the family's suite, which says which operation it is and judges it:

- `request`: the request conforms to the spec (what the sender owes);
- `rejected`: a request the spec says is invalid was refused the way the spec says (what the receiver owes);
- `response`: the answer conforms to the spec's response constraints.

A valid request the target refused is not judged: from traffic alone a business refusal ("visit not
found") cannot be told from a wrong one. Cells exist only for what the capture exercised; operations
of the spec that were not seen are listed as coverage, not counted as checks that did not run. Evidence
names the exchange (`harness capture show ID`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness import __version__
from harness.certify.cases import PASSIVE_ORDER, Evidence, Judgement, Reply, Request
from harness.certify.certification import Options, finish, suite_for
from harness.certify.results import Row, Run
from harness.certify.targets import KINDS
from harness.exchange import Exchange
from harness.spec.model import Interface


def certify(
    interface: Interface,
    store_path: Path,
    options: Options,
    *,
    channel: str | None = None,
    since: str | None = None,
    until: str | None = None,
    masker: Any = None,
) -> Run:
    """Judge the captured exchanges; with `masker` (a `harness.mask.masker.Masker`) the exchanges are
    judged as captured but every request, reply and finding the report shows is masked."""
    from harness.store import ExchangeFilter, Store

    suite = suite_for(interface)
    where = f"capture {store_path}" + (f" channel {channel}" if channel else "")
    run = Run(interface, "passive", where, harness_version=__version__, options=options.describe())
    run.command = f"harness certify --spec {interface.path} --store {store_path}" + (
        f" --channel {channel}" if channel else ""
    )
    rows = {r.id: r for r in suite.rows() if not r.flow}
    for row in rows.values():
        run.add_row(row)
    kind = KINDS[interface.family]
    flt = ExchangeFilter(channel=channel, since=since, until=until, kind=kind, replays=False)
    judged = skipped = 0
    with Store(store_path, create=False) as store:
        for exchange in store.query(flt):
            request, reply = _pair(exchange)
            if request is None:
                skipped += 1
                continue
            operation, verdicts = suite.passive(request, reply)
            if operation is None:
                skipped += 1
                continue
            if options.operations and operation not in options.operations:
                continue
            if operation not in run.rows:
                run.add_row(Row(operation, "not an operation of this spec", "", ""))
            judged += 1
            for check, judgement in verdicts:
                if options.checks and check not in options.checks:
                    continue
                _record(run, exchange, store_path, operation, check, judgement, request, reply, masker)
    run.checks = [c for c in PASSIVE_ORDER if any(check == c for (_, check) in run.cells)]
    seen = {op for (op, _) in run.cells}
    unseen = [
        r.id
        for r in rows.values()
        if r.id not in seen and (not options.operations or r.id in options.operations)
    ]
    run.notes.append(
        f"{judged} exchange(s) judged; {len(seen & set(rows))} of {len(rows)} operation(s) of the spec seen"
        + (f"; not seen: {', '.join(unseen[:30])}{' ...' if len(unseen) > 30 else ''}" if unseen else "")
    )
    if skipped:
        run.notes.append(
            f"{skipped} exchange(s) of kind {kind} name no operation the spec knows and were not judged"
        )
    return finish(run, options)


def _record(
    run: Run,
    exchange: Exchange,
    store_path: Path,
    operation: str,
    check: str,
    judgement: Judgement,
    request: Request,
    reply: Reply,
    masker: Any = None,
) -> None:
    cell = run.cell(operation, check)
    evidence = None
    show = _Shown(masker, exchange, request, reply)
    if not judgement.passed:
        evidence = Evidence(
            operation=operation,
            check=check,
            title=f"exchange #{exchange.id} ({exchange.channel}, {exchange.outcome})",
            expect="reject" if check == "rejected" else "to conform to the spec",
            constraint="",
            finding=show.text(judgement.finding),
            request=show.request,
            reply=show.reply,
            method=request.method if request.method != "SEND" else "",
            path=show.text(request.path),
            status=reply.status,
            reproduce=f"harness capture show {exchange.id} --store {store_path}",
            notes=[show.text(n) for n in judgement.notes],
        )
    cell.add(judgement.passed, evidence, seen=f"#{exchange.id}: {show.text(judgement.finding)}")


class _Shown:
    """What the report may show of one judged exchange: as captured without a masker, else its masked
    request and reply, and texts (findings quote the message) swept of the exchange's originals."""

    def __init__(self, masker: Any, exchange: Exchange, request: Request, reply: Reply) -> None:
        self.masker = masker
        self._exchange = exchange
        self._pass: Any = None
        if masker is None:
            self.request = request.text()
            self.reply = reply.text() if reply.error is None else f"(no answer: {reply.error})"
            return
        from harness.mask.exchange import mask_exchange
        from harness.mask.masker import MaskError

        masked_request, masked_reply = _pair(mask_exchange(masker, exchange))
        self.request = masked_request.text() if masked_request is not None else "(withheld: not maskable)"
        self.reply = (
            masked_reply.text() if masked_reply.error is None else f"(no answer: {masked_reply.error})"
        )
        self._pass = masker.new_pass()
        kind = "hl7v2" if exchange.protocol == "mllp" else f"http:{exchange.kind}"
        try:
            masker.structure(exchange.request, kind, self._pass, charset=exchange.charset)
        except MaskError:
            pass  # what was recorded before the failure still sweeps; the scrub takes 身份证 and mobiles

    def text(self, value: str) -> str:
        if self._pass is None or not value:
            return value
        return self._pass.replacements.sweep(value)


def _pair(exchange: Exchange) -> tuple[Request | None, Reply]:
    """The exchange as the Request and Reply a suite judges (HTTP heads read back from the stored bytes)."""
    if exchange.protocol == "mllp":
        acks = [a for a in (exchange.accept_response, exchange.response) if a]
        charset = exchange.charset or "utf-8"
        reply = Reply(acks=acks, outcome=exchange.outcome, charset=charset)
        if not acks and exchange.outcome not in ("no_ack_expected",):
            reply.error = exchange.error or exchange.outcome
        return Request(exchange.request, "SEND", "", {}, charset=charset), reply
    from harness.http_wire import HttpError, read_message

    try:
        sent = read_message(exchange.request, request=True)
    except HttpError:
        return None, Reply()
    head = sent.head
    request = Request(
        sent.body, head.method, head.target, dict(head.headers), charset=_charset(head.get("content-type"))
    )
    if not exchange.response:
        return request, Reply(error=exchange.error or exchange.outcome)
    try:
        answer = read_message(exchange.response, request=False, request_method=head.method)
    except HttpError as exc:
        return request, Reply(error=f"the captured answer is not readable HTTP: {exc}")
    headers = {k.lower(): v for k, v in answer.head.headers}
    return request, Reply(
        status=answer.head.status,
        headers=headers,
        body=answer.body,
        charset=_charset(headers.get("content-type")),
    )


def _charset(content_type: str | None) -> str:
    for part in (content_type or "").split(";")[1:]:
        name, _, value = part.strip().partition("=")
        if name.lower() == "charset" and value:
            return value.strip('"')
    return "utf-8"
