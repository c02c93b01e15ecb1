"""Copies between capture stores (SQLite <-> PostgreSQL, or same kind): lossless and resumable.

Rows are moved as stored (the bodies' bytes, the metadata's text, the times' floats), never through
`Exchange`, so a copy and a copy back hold the same values. Ids are kept when the target has none in
the way, which makes SQLite -> PostgreSQL -> SQLite an identity; otherwise the source's ids move up
by one offset, and run ids and replay links (`run_id`, `original_id`) move with them.

The target keeps a record per source store (`store_copies`, keyed by the source's own `store_id`):
the range of source ids a copy covers, its offsets and how far it got, updated in the same
transaction as each batch. Running the copy again carries on where it stopped, copies what the
source gained since (as a new range with ids reserved in the target), and refreshes the rows that
were still `pending` (enhanced-mode exchanges completed in place later).

Encrypted bodies move sealed, with their key ids, and open in the target with the same keys (their
associated data names no id); a target not encrypted yet takes the source's key as its own.

One thing is not kept as is: PostgreSQL's text cannot hold NUL, so a SQLite store written before
NUL was stored as U+FFFD has it replaced on the way into PostgreSQL; the copy counts such rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.store.backend import Store, StoreError
from harness.store.codec import _COLUMNS

_RUN_ID = 1 + _COLUMNS.index("run_id")
_ORIGINAL_ID = 1 + _COLUMNS.index("original_id")
_OUTCOME = 1 + _COLUMNS.index("outcome")


@dataclass(slots=True)
class Segment:
    """One range of source ids copied with one offset (a row of the target's store_copies)."""

    first: int
    last: int
    offset: int
    run_first: int
    run_last: int
    run_offset: int
    done: int

    def covers(self, source_id: int) -> bool:
        return self.first <= source_id <= self.last

    def covers_run(self, run_id: int) -> bool:
        return self.run_first <= run_id <= self.run_last


@dataclass(slots=True)
class CopyResult:
    copied: int = 0
    """Exchanges inserted into the target by this run."""
    refreshed: int = 0
    """Exchanges copied while `pending` and completed since, brought up to date."""
    runs: int = 0
    already: int = 0
    """Exchanges an earlier run of the same copy had moved."""
    nul_replaced: int = 0
    """Rows whose metadata held NUL, stored in PostgreSQL with U+FFFD."""
    segments: list[Segment] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "copied": self.copied,
            "refreshed": self.refreshed,
            "runs": self.runs,
            "already_copied": self.already,
            "nul_replaced": self.nul_replaced,
            "id_offsets": sorted({s.offset for s in self.segments}),
        }


def copy_store(
    source: Store,
    target: Store,
    *,
    batch: int = 1000,
    progress: Callable[[int, int], None] | None = None,
) -> CopyResult:
    """Copy every exchange and run of `source` into `target` (see the module docstring)."""
    if batch < 1:
        raise ValueError(f"batch {batch}: must be 1 or more")
    key = source.store_id
    if key == target.store_id:
        raise StoreError(f"{source.path} and {target.path} are the same store")
    result = CopyResult()
    sealed_with = source.encryption_key_id()
    if sealed_with is not None and target.encryption_key_id() is None:
        target.mark_key(sealed_with, source.key_algorithm())  # the copy is as encrypted as its source
    segments = _plan(source, target, key)
    result.segments = segments
    result.already = sum(_count(source, s.first - 1, s.done) for s in segments if s.done >= s.first)
    clean = _cleaner(target, result)
    runs = []
    for row in source.raw_runs():
        seg = _run_segment(segments, row[0])
        if seg is not None:
            runs.append(clean((row[0] + seg.run_offset, *row[1:])))
    if runs:
        with target._transaction():
            target.upsert_runs(runs)
        result.runs = len(runs)
    total = sum(_count(source, s.done, s.last) for s in segments)
    for seg in segments:
        while seg.done < seg.last:
            rows = source.raw_exchanges(seg.done, seg.last, batch)
            if not rows:
                seg.done = seg.last
                with target._transaction():
                    target.advance_segment(key, seg.first, seg.done)
                break
            mapped = [clean(_map(row, segments)) for row in rows]
            target.prepare(mapped)
            with target._transaction():
                target.insert_raw(mapped)
                target.advance_segment(key, seg.first, rows[-1][0])
            seg.done = rows[-1][0]
            result.copied += len(rows)
            if progress is not None:
                progress(result.copied, total)
    result.refreshed = _refresh_pending(source, target, segments, clean)
    return result


def _plan(source: Store, target: Store, key: str) -> list[Segment]:
    """The target's segments for this source, plus a new one for what the source gained since."""
    segments = [Segment(*row) for row in target.copy_segments(key)]
    low, high, run_low, run_high = source.id_span()
    through = max((s.last for s in segments), default=0)
    runs_through = max((s.run_last for s in segments), default=0)
    if high <= through and run_high <= runs_through:
        return segments
    first = max(low, through + 1) if high > through else through + 1
    run_first = max(run_low, runs_through + 1) if run_high > runs_through else runs_through + 1
    last, run_last = max(high, through), max(run_high, runs_through)
    with target._transaction():
        target.lock_ids()
        used, runs_used = target.next_ids()
        offset = 0 if used < first else used - first + 1
        run_offset = 0 if runs_used < run_first else runs_used - run_first + 1
        target.reserve_ids(last + offset, run_last + run_offset)
        segment = Segment(first, last, offset, run_first, run_last, run_offset, first - 1)
        target.record_segment(
            key,
            str(source.path),
            (first, last, offset, run_first, run_last, run_offset, first - 1),
        )
    segments.append(segment)
    return segments


def _count(source: Store, after: int, through: int) -> int:
    if through <= after:
        return 0
    (n,) = source._execute(
        "SELECT COUNT(*) FROM exchanges WHERE id > ? AND id <= ?", (after, through)
    ).fetchone()
    return int(n)


def _run_segment(segments: Sequence[Segment], run_id: int) -> Segment | None:
    return next((s for s in segments if s.covers_run(run_id)), None)


def _map(row: tuple, segments: Sequence[Segment]) -> tuple:
    """A source row with its id, run id and original id as the target knows them."""
    out = list(row)
    seg = next(s for s in segments if s.covers(row[0]))
    out[0] = row[0] + seg.offset
    run_id = row[_RUN_ID]
    if run_id is not None:
        run_seg = _run_segment(segments, int(run_id))
        if run_seg is not None:
            out[_RUN_ID] = run_id + run_seg.run_offset
    original = row[_ORIGINAL_ID]
    if original is not None:
        original_seg = next((s for s in segments if s.covers(int(original))), None)
        if original_seg is not None:
            out[_ORIGINAL_ID] = original + original_seg.offset
    return tuple(out)


def _cleaner(target: Store, result: CopyResult) -> Callable[[tuple], tuple]:
    """What the target cannot hold, made storable: NUL in text for PostgreSQL (counted)."""
    if target.kind != "postgresql":
        return lambda row: row

    def clean(row: tuple) -> tuple:
        if not any(isinstance(v, str) and "\x00" in v for v in row):
            return row
        result.nul_replaced += 1
        return tuple(v.replace("\x00", "\ufffd") if isinstance(v, str) else v for v in row)

    return clean


def _refresh_pending(
    source: Store, target: Store, segments: Sequence[Segment], clean: Callable[[tuple], tuple]
) -> int:
    refreshed = 0
    for seg in segments:
        if seg.done < seg.first:
            continue
        stale = target.pending_ids(seg.first + seg.offset, seg.done + seg.offset)
        for start in range(0, len(stale), 500):
            ids = [i - seg.offset for i in stale[start : start + 500]]
            rows = [r for r in source.raw_by_ids(ids) if r[_OUTCOME] != "pending"]
            if rows:
                with target._transaction():
                    target.replace_raw([clean(_map(r, segments)) for r in rows])
                refreshed += len(rows)
    return refreshed
