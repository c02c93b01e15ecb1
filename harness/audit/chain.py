"""The audit chain without I/O: entry encoding, hashing, linking and verification.

Each entry names the hash of the one before it (`prev_hash`; the first names `GENESIS`) and its own
`hash` is SHA-256 over a canonical encoding of every other field: JSON with sorted keys, no spaces,
UTF-8, times as ISO 8601 UTC text (never floats). So an entry whose content changed no longer matches
its hash; an entry rewritten with a fresh hash no longer matches the `prev_hash` of the next; a removed
entry leaves a gap in the sequence; a moved or inserted one breaks the order. `verify` walks a list of
entries as they were read (store rows by sequence, file lines in file order) and names the first
problem by sequence and position. What it cannot see alone: the last entries cut off, or the whole
chain rewritten from some entry on; an anchored head hash (`verify(anchor=...)`) or a copy kept
elsewhere (`compare`) catch those.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

GENESIS = "0" * 64
"""The `prev_hash` of the first entry."""
FORMAT = 1
"""The encoding version, hashed with every entry so a later encoding cannot be confused with this one."""
FIELDS = ("v", "seq", "time", "store", "actor", "host", "action", "target", "details", "file", "prev_hash")


class EntryError(ValueError):
    """An entry that cannot be read at all (a file line that is not an entry): where and what."""


@dataclass(frozen=True, slots=True)
class Entry:
    seq: int
    time: str
    """ISO 8601 UTC with microseconds, e.g. 2026-12-03T14:00:55.123456Z."""
    store: str
    """The id of the store whose chain this is (entries cannot be moved between stores)."""
    actor: Mapping[str, Any]
    """Who: the OS user (and uid), and for the admin API the token's fingerprint; never a secret."""
    host: str
    action: str
    target: str
    details: Mapping[str, Any]
    file: str | None
    """The JSON-lines file this entry was also written to, or None."""
    prev_hash: str
    hash: str
    v: int = FORMAT

    def body(self) -> dict[str, Any]:
        """Every field but the hash: what the hash covers."""
        out = asdict(self)
        del out["hash"]
        return out

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in (*FIELDS, "hash")}

    def line(self) -> str:
        """The entry as one JSON line (its canonical encoding with the hash), for the JSON-lines file."""
        return canonical(self.to_json()).decode("utf-8")


def canonical(value: Mapping[str, Any]) -> bytes:
    """The one byte encoding of `value` that hashes are computed over."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def digest(body: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(body)).hexdigest()


def utc_text(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def link(
    previous: Entry | None,
    *,
    when: float,
    store: str,
    actor: Mapping[str, Any],
    host: str,
    action: str,
    target: str,
    details: Mapping[str, Any] | None = None,
    file: str | None = None,
) -> Entry:
    """The entry that follows `previous` (None: the first), with its hash."""
    details = dict(details or {})
    canonical(details)  # not JSON (a set, NaN, bytes): refused here, before anything is written
    body = {
        "v": FORMAT,
        "seq": 1 if previous is None else previous.seq + 1,
        "time": utc_text(when),
        "store": store,
        "actor": dict(actor),
        "host": host,
        "action": action,
        "target": target,
        "details": details,
        "file": file,
        "prev_hash": GENESIS if previous is None else previous.hash,
    }
    return Entry(**body, hash=digest(body))


def from_json(data: Any, where: str = "entry") -> Entry:
    """An entry from its JSON form (a file line, or a row turned into a mapping); EntryError if it is
    not one. Its hash is not checked here: that is `verify`'s job, which says which entry is wrong."""
    if not isinstance(data, Mapping):
        raise EntryError(f"{where}: not a JSON object")
    missing = [name for name in (*FIELDS, "hash") if name not in data]
    if missing:
        raise EntryError(f"{where}: missing {', '.join(missing)}")
    extra = sorted(set(data) - {*FIELDS, "hash"})
    if extra:
        raise EntryError(f"{where}: unknown field(s) {', '.join(extra)}")
    seq = data["seq"]
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        raise EntryError(f"{where}: seq must be a positive integer, not {seq!r}")
    for name in ("actor", "details"):
        if not isinstance(data[name], Mapping):
            raise EntryError(f"{where}: {name} must be a JSON object")
    return Entry(**{name: data[name] for name in (*FIELDS, "hash")})


def parse_line(line: str, where: str) -> Entry:
    try:
        data = json.loads(line)
    except ValueError as exc:
        raise EntryError(f"{where}: not JSON ({exc})") from None
    return from_json(data, where)


@dataclass(frozen=True, slots=True)
class Problem:
    kind: str
    """changed | removed | inserted | reordered | unlinked | truncated | mismatch"""
    seq: int | None
    position: int | None
    """0-based index in what was read (the row, or the line number minus one)."""
    message: str


@dataclass(slots=True)
class Verdict:
    entries: int = 0
    head: Entry | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(
    entries: Sequence[Entry], *, anchor: str | None = None, first_seq: int = 1, first_prev: str = GENESIS
) -> Verdict:
    """Walk `entries` in the order read; the first problem found, by sequence and position.

    `anchor`: a head hash recorded elsewhere earlier; it must still be in the chain. `first_seq` and
    `first_prev` let a partial copy (a file started later) be checked from where it starts.
    """
    verdict = Verdict(entries=len(entries), head=entries[-1] if entries else None)
    problem = _first_problem(entries, first_seq, first_prev)
    if problem is not None:
        verdict.problems.append(problem)
        return verdict
    if anchor is not None and not any(e.hash == anchor for e in entries):
        verdict.problems.append(
            Problem(
                "truncated",
                None,
                None,
                f"the anchored head hash {anchor} is not in the chain: entries from it on were removed, "
                "or the chain was rewritten",
            )
        )
    return verdict


def _first_problem(entries: Sequence[Entry], expected: int, prev: str) -> Problem | None:
    seen: set[int] = set()
    for pos, entry in enumerate(entries):
        seq = entry.seq
        if digest(entry.body()) != entry.hash:
            return Problem(
                "changed", seq, pos, f"entry {seq} was changed: its content no longer matches its hash"
            )
        if seq in seen:
            return Problem(
                "inserted", seq, pos,
                f"entry {seq} appears twice (position {pos}): an entry was inserted",
            )  # fmt: skip
        if seq < expected:
            return Problem(
                "reordered", seq, pos, f"entry {seq} comes after entry {expected - 1}: entries were reordered"
            )
        if seq > expected:
            later = {e.seq for e in entries[pos + 1 :]}
            if expected in later:
                return Problem(
                    "reordered",
                    seq,
                    pos,
                    f"entry {seq} comes before entry {expected}: entries were reordered",
                )
            gap = f"entry {expected}" if seq == expected + 1 else f"entries {expected} to {seq - 1}"
            return Problem(
                "removed", expected, pos, f"{gap} removed (entry {seq} follows entry {expected - 1})"
            )
        if entry.prev_hash != prev:
            before = f"entry {seq - 1}" if seq > 1 else "the start"
            why = f"{before} was rewritten with a new hash, or entry {seq} was forged in its place"
            return Problem("unlinked", seq, pos, f"entry {seq} does not follow {before}: {why}")
        seen.add(seq)
        prev = entry.hash
        expected = seq + 1
    return None


@dataclass(slots=True)
class CopyReport:
    """How a JSON-lines copy compares with the store's chain."""

    lines: int = 0
    this_store: int = 0
    problems: list[Problem] = field(default_factory=list)


def compare(
    store_entries: Iterable[Entry], copy: Sequence[Entry], copy_name: str, store_id: str
) -> CopyReport:
    """Every entry of this store in the copy must be the store's entry of that sequence, byte for byte;
    every store entry that says it was written to `copy_name` must be in the copy."""
    by_seq = {e.seq: e for e in store_entries}
    report = CopyReport(lines=len(copy))
    in_copy: set[int] = set()
    for pos, entry in enumerate(copy):
        if entry.store != store_id:
            continue
        report.this_store += 1
        in_copy.add(entry.seq)
        stored = by_seq.get(entry.seq)
        if stored is None:
            report.problems.append(
                Problem(
                    "removed", entry.seq, pos, f"entry {entry.seq} is in {copy_name} but not in the store"
                )
            )
        elif stored.hash != entry.hash or stored.to_json() != entry.to_json():
            report.problems.append(
                Problem(
                    "mismatch", entry.seq, pos, f"entry {entry.seq} differs between the store and {copy_name}"
                )
            )
    for seq, entry in sorted(by_seq.items()):
        if entry.file == copy_name and seq not in in_copy:
            report.problems.append(
                Problem("removed", seq, None, f"entry {seq} was written to {copy_name} but is not in it")
            )
    return report


def verify_copy(entries: Sequence[Entry]) -> Verdict:
    """A JSON-lines copy on its own (it may hold several stores' entries, and start late or skip what
    processes without the file recorded): each entry matches its hash, each store's sequence only rises
    in file order, and consecutive entries link."""
    verdict = Verdict(entries=len(entries), head=entries[-1] if entries else None)
    last: dict[str, Entry] = {}
    for pos, entry in enumerate(entries):
        seq = entry.seq
        if digest(entry.body()) != entry.hash:
            verdict.problems.append(
                Problem(
                    "changed",
                    seq,
                    pos,
                    f"line {pos + 1}: entry {seq} was changed: its content no longer matches its hash",
                )  # fmt: skip
            )
            return verdict
        before = last.get(entry.store)
        if before is not None and seq <= before.seq:
            kind = "inserted" if seq == before.seq else "reordered"
            verdict.problems.append(
                Problem(kind, seq, pos, f"line {pos + 1}: entry {seq} comes after entry {before.seq}: {kind}")
            )
            return verdict
        if before is not None and seq == before.seq + 1 and entry.prev_hash != before.hash:
            verdict.problems.append(
                Problem(
                    "unlinked",
                    seq,
                    pos,
                    f"line {pos + 1}: entry {seq} does not follow entry {before.seq}: "
                    "one of them was rewritten",
                )  # fmt: skip
            )
            return verdict
        last[entry.store] = entry
    return verdict
