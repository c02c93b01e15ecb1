"""Key rotation: every body of a store re-sealed with a new key, a batch per transaction.

The store's current key (`store_info.key_id`) moves to the new key first, so from then on a writer or
reader holding only the old key is refused, and rows written meanwhile by a writer still running
with the old key are found by the next pass (or the next run). Each batch of rows is re-sealed in
one transaction, so at every moment each row is sealed with exactly one of the two keys, and
a rotation cut short (a crash, a kill, a full disk) loses nothing: the store opens with both keys
given, and running the rotation again finishes it. Bodies stored in clear (written before
encryption was switched on) are sealed on the way. A row is rewritten only if it is still as it was
read (an enhanced-mode exchange completed meanwhile is re-read by the next pass).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.store.backend import Store
from harness.store.crypto import SEALED_COLUMNS, StoreKey, StoreKeyError, aad

BATCH = 500
MAX_PASSES = 5
"""Passes over the store for rows that changed while they were being re-sealed."""

_READ = ("id", "key_id", "channel", "started_at", "control_id", "request", "response", "accept_response")


@dataclass(slots=True)
class RekeyResult:
    key_id: str
    algorithm: str
    resealed: int = 0
    """Rows re-sealed (or sealed, when they were in clear) by this run."""
    before: dict[str, int] = field(default_factory=dict)
    """Rows per key id before the run ('clear' for bodies in clear)."""
    left: int = 0
    """Rows still not sealed with the new key (changed under every pass); run it again."""

    def to_json(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "algorithm": self.algorithm,
            "resealed": self.resealed,
            "before": self.before,
            "left": self.left,
        }


def rekey(
    store: Store,
    new: StoreKey,
    *,
    batch: int = BATCH,
    progress: Callable[[int, int], None] | None = None,
) -> RekeyResult:
    """Re-seal every body of `store` with `new`; `store.keys` must hold every key its rows name."""
    if batch < 1:
        raise ValueError(f"batch {batch}: must be 1 or more")
    counts = store._execute("SELECT key_id, COUNT(*) FROM exchanges GROUP BY key_id").fetchall()
    result = RekeyResult(new.id, new.algorithm, before={kid or "clear": int(n) for kid, n in counts})
    missing = sorted(kid for kid, _ in counts if kid is not None and kid != new.id and kid not in store.keys)
    if missing:
        raise StoreKeyError(
            f"capture store {store.path} holds exchanges sealed with key {', '.join(missing)}, which was not "
            "given: give every old key (--store-key-file, repeatable) besides the new one"
        )
    store.set_key(new)
    total = sum(n for kid, n in counts if kid != new.id)
    opener = store._opener(_READ)
    where = " AND started_at = ? AND {} AND request = ?"
    for _ in range(MAX_PASSES):
        last, skipped = 0, 0
        while True:
            rows = store._execute(
                f"SELECT {', '.join(_READ)} FROM exchanges WHERE id > ? AND (key_id IS NULL OR key_id <> ?)"
                " ORDER BY id LIMIT ?",
                (last, new.id, batch),
            ).fetchall()
            if not rows:
                break
            with store._transaction():
                for row in rows:
                    exchange, kid, channel, started, control, stored_request = row[:6]
                    _, _, _, _, _, request, response, accept = opener(row)
                    sealed = [
                        new.seal(body, aad(name, channel, started, control)) if body is not None else None
                        for name, body in zip(SEALED_COLUMNS, (request, response, accept), strict=True)
                    ]
                    match = "key_id IS NULL" if kid is None else "key_id = ?"
                    params = [*sealed, new.id, exchange, started, *([kid] if kid else []), stored_request]
                    updated = store._execute(
                        "UPDATE exchanges SET request = ?, response = ?, accept_response = ?, key_id = ?"
                        " WHERE id = ?" + where.format(match),
                        params,
                    ).rowcount
                    if updated == 1:
                        result.resealed += 1
                    else:
                        skipped += 1
            last = rows[-1][0]
            if progress is not None:
                progress(result.resealed, total)
        if not skipped:
            break
    (result.left,) = store._execute(
        "SELECT COUNT(*) FROM exchanges WHERE key_id IS NULL OR key_id <> ?", (new.id,)
    ).fetchone()
    return result

