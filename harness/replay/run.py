"""A replay run: selected items re-sent through a `Sender`, each reply stored as part of the run.

The run is a row of the store's runs table (kind "replay") holding everything needed to carry it on:
the options, the selection, the target. Every replayed exchange goes into the same store with
`run_id` and `original_id` (its captured exchange), its request as actually sent (after rewrites),
and in `meta["replay"]` the item key and the original control id (the id map). Originals stay as
they were captured.

Resume: the items whose replayed exchange already has a reply are skipped; everything else (never
sent, or sent without a reply) is sent again. An exchange is committed right after its reply comes
back (durable writer), so a killed run loses at most the replies that were in flight at that moment.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from harness.exchange import Exchange
from harness.replay.compare import IgnoreRule, parse_ignore
from harness.replay.ordering import run_ordered
from harness.replay.pacing import Pace, Pacer, parse_pace
from harness.replay.rewrite import RewriteError, Rewriter, Rules, control_id_for
from harness.replay.selection import ReplayItem, Selection, from_files, from_store
from harness.replay.sender import SenderFactory, Sent
from harness.store import CaptureWriter, ExchangeFilter, Store, StoreError


class RunError(Exception):
    """A run cannot start or resume (unknown run id, wrong kind, bad stored options)."""


@dataclass(slots=True)
class ReplayOptions:
    target: str
    pace: Pace = field(default_factory=lambda: Pace("max"))
    concurrency: int = 1
    order_key: str | None = "PID-3"
    rules: Rules = field(default_factory=Rules)
    timeout: float = 10.0
    ignore: tuple[IgnoreRule, ...] = ()
    selection: Selection | None = None
    files: list[str] = field(default_factory=list)
    charset: str | None = None

    def to_params(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "pace": str(self.pace) if self.pace.mode != "rate" else None,
            "rate": self.pace.value if self.pace.mode == "rate" else None,
            "concurrency": self.concurrency,
            "order_key": self.order_key,
            "rules": self.rules.to_json(),
            "timeout": self.timeout,
            "ignore": [r.pattern + (":timestamps" if r.timestamps_only else "") for r in self.ignore],
            "selection": self.selection.to_json() if self.selection is not None else None,
            "files": list(self.files),
            "charset": self.charset,
        }

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> ReplayOptions:
        try:
            sel = params.get("selection")
            return cls(
                target=params["target"],
                pace=parse_pace(params.get("pace"), params.get("rate")),
                concurrency=int(params.get("concurrency") or 1),
                order_key=params.get("order_key"),
                rules=Rules.from_json(params.get("rules") or {}),
                timeout=float(params.get("timeout") or 10.0),
                ignore=tuple(parse_ignore(r) for r in params.get("ignore") or ()),
                selection=Selection.from_json(sel) if sel is not None else None,
                files=list(params.get("files") or ()),
                charset=params.get("charset"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise RunError(f"the stored options of this run cannot be read: {exc}") from None


@dataclass(slots=True)
class Progress:
    """Counters the shell shows while the run goes (updated from worker threads under a lock)."""

    selected: int = 0
    skipped: int = 0
    """Already answered in an earlier attempt of this run (resume)."""
    sent: int = 0
    replied: int = 0
    no_reply: int = 0
    errors: int = 0
    codes: dict[str, int] = field(default_factory=dict)
    unreachable: str | None = None
    """Set when the target could not be reached: the run stopped there (resumable)."""


def item_source(store: Store, options: ReplayOptions) -> Iterator[ReplayItem]:
    """The selected items in send order: files when given, else the store's selection."""
    if options.files:
        return from_files(options.files, charset=options.charset)
    return from_store(store, options.selection or Selection())


def ordering_key(item: ReplayItem, path: str | None) -> str | None:
    """The value of the ordering path (PID-3 by default) in the request; None: no ordering constraint."""
    if not path or item.kind != "hl7v2":
        return None
    from harness.replay.compare import hl7v2_fields

    try:
        seg_field, _, sub = path.partition(".")
        fields = hl7v2_fields(item.payload, item.charset, only=seg_field.split("-")[0].split("[")[0])
    except ValueError:
        return None
    value = fields.get(seg_field)
    if value is None or not sub:
        return value
    value = value.split("~")[0]
    for sep, index in zip(("^", "&"), sub.split("."), strict=False):
        parts = value.split(sep)
        i = int(index) - 1 if index.isdigit() else -1
        value = parts[i] if 0 <= i < len(parts) else ""
    return value or None


def answered_keys(store: Store, run_id: int) -> set[str]:
    """Item keys of this run that already got a reply (what a resume must not send again)."""
    done: set[str] = set()
    for ex in store.query(ExchangeFilter(run_id=run_id), bodies=False):
        key = (ex.meta.get("replay") or {}).get("item")
        delivered = ex.outcome in ("ok", "nak", "bad_ack", "no_ack_expected")
        if key and (delivered or ex.ack_code is not None or ex.accept_ack_code is not None):
            done.add(key)
    return done


class ReplayRun:
    """Carries out one replay run (new or resumed) against one store."""

    def __init__(
        self,
        store: Store,
        options: ReplayOptions,
        sender_factory: SenderFactory,
        *,
        run_id: int | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        stop: threading.Event | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.options = options
        self.sender_factory = sender_factory
        self.on_progress = on_progress
        self.stop = stop or threading.Event()
        self.rewriter = Rewriter(options.rules, clock=clock)
        self.progress = Progress()
        self._lock = threading.Lock()
        self._local = threading.local()
        self._senders: list[Any] = []
        self.resumed = run_id is not None
        if run_id is None:
            run_id = store.create_run("replay", options.to_params(), target=options.target)
        self.run_id = run_id

    @classmethod
    def resume(
        cls,
        store: Store,
        run_id: int,
        sender_factory_for: Callable[[ReplayOptions], SenderFactory],
        **kw: Any,
    ) -> ReplayRun:
        run = store.get_run(run_id)
        if run is None:
            raise RunError(f"run {run_id} does not exist in {store.path}")
        if run.kind != "replay":
            raise RunError(f"run {run_id} is a {run.kind} run, not a replay")
        options = ReplayOptions.from_params(run.params)
        return cls(store, options, sender_factory_for(options), run_id=run_id, **kw)

    # the run

    def pending_items(self) -> Iterator[ReplayItem]:
        done = answered_keys(self.store, self.run_id) if self.resumed else set()
        for item in item_source(self.store, self.options):
            self.progress.selected += 1
            if item.key in done:
                self.progress.skipped += 1
                continue
            yield item

    def execute(self) -> Progress:
        """Send every pending item; returns the counters. Raises StoreError if the store fails."""
        pacer = Pacer(self.options.pace)
        writer = CaptureWriter(self.store.path, mode="durable")
        write_errors: list[BaseException] = []

        def stored(result: int | BaseException) -> None:
            if isinstance(result, BaseException):
                write_errors.append(result)
                self.stop.set()

        def work(item: ReplayItem) -> Exchange:
            ex = self.replay_one(item)
            writer.submit(ex, stored)
            return ex

        def on_done(item: ReplayItem, ex: Exchange | None, error: BaseException | None) -> None:
            with self._lock:
                p = self.progress
                if error is not None or ex is None:
                    p.errors += 1
                else:
                    if ex.outcome != "error" or ex.response is not None:
                        p.sent += 1
                    if ex.response is not None:
                        p.replied += 1
                        code = ex.ack_code or "?"
                        if ex.accept_ack_code is not None:
                            code = f"{ex.accept_ack_code}+{code}"
                        p.codes[code] = p.codes.get(code, 0) + 1
                    elif ex.outcome == "no_ack_expected":
                        p.codes["NE/NE"] = p.codes.get("NE/NE", 0) + 1
                    elif ex.outcome == "error":
                        p.errors += 1
                    else:
                        p.no_reply += 1
            if self.on_progress is not None:
                self.on_progress(self.progress)

        status = "interrupted"
        try:
            run_ordered(
                ((ordering_key(item, self.options.order_key), item) for item in self.pending_items()),
                work,
                concurrency=self.options.concurrency,
                on_done=on_done,
                due=lambda item: pacer.due(item.captured_at),
                stop=self.stop,
            )
            status = "finished" if not self.stop.is_set() else "interrupted"
        finally:
            writer.close()
            for sender in self._senders:
                try:
                    sender.close()
                except OSError:
                    pass
            self.store.finish_run(self.run_id, status=status, summary=self.summary_counts())
        if write_errors:
            raise StoreError(f"replayed exchanges could not be stored: {write_errors[0]}")
        return self.progress

    def summary_counts(self) -> dict[str, Any]:
        p = self.progress
        return {
            "selected": p.selected,
            "skipped": p.skipped,
            "sent": p.sent,
            "replied": p.replied,
            "no_reply": p.no_reply,
            "errors": p.errors,
            "codes": dict(p.codes),
            "unreachable": p.unreachable,
        }

    def _sender(self):
        sender = getattr(self._local, "sender", None)
        if sender is None:
            sender = self._local.sender = self.sender_factory()
            with self._lock:
                self._senders.append(sender)
        return sender

    def replay_one(self, item: ReplayItem) -> Exchange:
        """Rewrite, send and record one item (never raises for a bad message or the network)."""
        new_id = (
            control_id_for(self.run_id, item.original_id, item.index)
            if self.options.rules.new_control_ids
            else None
        )
        replay_meta: dict[str, Any] = {"item": item.key, "source": item.source}
        try:
            rw = self.rewriter.apply(
                item.payload, charset=item.charset, control_id=item.control_id, new_control_id=new_id
            )
        except RewriteError as exc:
            now = time.time()
            replay_meta["original_control_id"] = item.control_id
            return self._exchange(
                item,
                item.payload,
                item.control_id,
                replay_meta,
                Sent(now, now, None, "error", error=f"not sent: {exc}"),
            )
        replay_meta["original_control_id"] = rw.original_control_id
        if rw.changes:
            replay_meta["changes"] = [list(c) for c in rw.changes]
        sent = self._sender().send(rw.payload, control_id=rw.control_id, charset=item.charset)
        if sent.unreachable:
            with self._lock:
                self.progress.unreachable = self.progress.unreachable or sent.error
            self.stop.set()
        return self._exchange(item, rw.payload, rw.control_id, replay_meta, sent)

    def _exchange(
        self,
        item: ReplayItem,
        request: bytes,
        control_id: str | None,
        replay_meta: dict[str, Any],
        sent: Sent,
    ) -> Exchange:
        return Exchange(
            channel=item.channel or "replay",
            protocol=item.protocol,
            kind=item.kind,
            started_at=sent.started_at,
            ended_at=sent.ended_at,
            latency_ms=sent.latency_ms,
            upstream_addr=self.options.target,
            request=request,
            response=sent.response,
            outcome=sent.outcome,
            ack_code=sent.ack_code,
            accept_ack_code=sent.accept_ack_code,
            accept_response=sent.accept_response,
            message_type=item.message_type,
            control_id=control_id,
            charset=item.charset,
            meta={"replay": replay_meta},
            run_id=self.run_id,
            original_id=item.original_id,
            error=sent.error,
            notes=list(sent.notes),
        )
