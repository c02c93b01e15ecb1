"""A masked copy of a capture store: every exchange masked, runs and replay links kept.

Written through the store's public interface only (`Store.query`, `Store.add_many`, `create_run`,
`finish_run`), so it works with whatever backend the store has. The copy is a new file (never written
over an existing one); the source is only read. Replay runs keep their link to the originals they
re-sent (ids are renumbered in the copy), so `harness compare` on the copy judges masked originals
against masked replays. A run's selection values that name a patient (`--where PID-3.1=...`) are
masked like the message fields they select; its times are those of the copy, the original ones are
kept in its parameters under `masked_from`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.exchange import Exchange, iso_time
from harness.mask.exchange import mask_exchange
from harness.mask.masker import Masker
from harness.store import ExchangeFilter, Store, StoreError

BATCH = 500


class MaskStoreError(ValueError):
    """The copy cannot be made (target exists, same file, unreadable source)."""


@dataclass(slots=True)
class StoreCopy:
    source: str
    target: str
    exchanges: int = 0
    withheld: int = 0
    """Exchanges with at least one body withheld because it could not be masked."""
    runs: int = 0
    unlinked: int = 0
    """Replayed exchanges whose original was not copied (outside the filter): their link is dropped."""
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "exchanges": self.exchanges,
            "withheld": self.withheld,
            "runs": self.runs,
            "unlinked": self.unlinked,
        }


def mask_store(
    masker: Masker,
    source: str | Path,
    target: str | Path,
    flt: ExchangeFilter | None = None,
    *,
    progress: Callable[[int], None] | None = None,
) -> StoreCopy:
    source, target = Path(source), Path(target)
    if target.resolve() == source.resolve():
        raise MaskStoreError("the masked copy must be another file than the store it is made from")
    if target.exists():
        raise MaskStoreError(f"{target} exists: a masked copy is always a new file, never written over one")
    try:
        src = Store(source, create=False)
    except StoreError as exc:
        raise MaskStoreError(str(exc)) from None
    result = StoreCopy(str(source), str(target))
    try:
        with src, Store(target, create=True) as dst:
            runs = _copy_runs(masker, src, dst)
            result.runs = len(runs)
            _copy_exchanges(masker, src, dst, flt or ExchangeFilter(), runs, result, progress)
    except BaseException as exc:
        _remove_partial(target)  # half a copy would pass for a whole one
        if isinstance(exc, StoreError | ValueError) and not isinstance(exc, MaskStoreError):
            raise MaskStoreError(str(exc)) from None
        raise
    return result


def _remove_partial(target: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            Path(f"{target}{suffix}").unlink()
        except FileNotFoundError:
            pass


def _copy_runs(masker: Masker, src: Store, dst: Store) -> dict[int, int]:
    out: dict[int, int] = {}
    for run in src.runs():
        params = mask_run_params(masker, run.params)
        params["masked_from"] = {
            "run_id": run.id,
            "created_at": iso_time(run.created_at),
            "finished_at": iso_time(run.finished_at) if run.finished_at is not None else None,
            "policy": masker.policy.name,
            "key_id": masker.key_id,
        }
        new_id = dst.create_run(run.kind, params, target=run.target)
        if run.finished_at is not None or run.status != "running":
            dst.finish_run(new_id, status=run.status, summary=run.summary)
        out[run.id] = new_id
    return out


def _copy_exchanges(
    masker: Masker,
    src: Store,
    dst: Store,
    flt: ExchangeFilter,
    runs: dict[int, int],
    result: StoreCopy,
    progress: Callable[[int], None] | None,
) -> None:
    ids: dict[int, int] = {}
    pending: list[tuple[int, Exchange]] = []

    def flush() -> None:
        if not pending:
            return
        new_ids = dst.add_many([ex for _, ex in pending])
        for (old, _), new in zip(pending, new_ids, strict=True):
            ids[old] = new
        pending.clear()
        if progress is not None:
            progress(result.exchanges)

    for ex in src.query(flt, bodies=True):
        masked = mask_exchange(masker, ex)
        masked.id = None
        masked.run_id = runs.get(ex.run_id) if ex.run_id is not None else None
        if ex.original_id is not None:
            if any(old == ex.original_id for old, _ in pending):
                flush()
            masked.original_id = ids.get(ex.original_id)
            if masked.original_id is None:
                result.unlinked += 1
                masked.notes.append(f"masked: the original (exchange {ex.original_id}) was not copied")
        if any(note.startswith("masked: ") and "withheld" in note for note in masked.notes):
            result.withheld += 1
        pending.append((ex.id, masked))
        result.exchanges += 1
        if len(pending) >= BATCH:
            flush()
    flush()


def mask_run_params(masker: Masker, params: dict[str, Any]) -> dict[str, Any]:
    """A run's parameters with the patient values of its selection and rewrites masked."""
    out = dict(params)
    selection = out.get("selection")
    if isinstance(selection, dict) and isinstance(selection.get("path_values"), dict):
        selection = dict(selection)
        selection["path_values"] = {
            path: mask_path_value(masker, path, value) for path, value in selection["path_values"].items()
        }
        out["selection"] = selection
    rules = out.get("rules")
    if isinstance(rules, dict) and isinstance(rules.get("sets"), list):
        rules = dict(rules)
        rules["sets"] = [
            [item[0], mask_path_value(masker, item[0], item[1])]
            if isinstance(item, list | tuple) and len(item) == 2
            else item
            for item in rules["sets"]
        ]
        out["rules"] = rules
    return out


def mask_path_value(masker: Masker, path: str, value: Any) -> Any:
    """A value given for an HL7 v2 terse path (a filter, a rewrite), masked as the policy masks that
    element, so it still selects the masked messages (identifiers do; a name component given alone is
    masked on its own, not as part of the whole name). Regular expressions (`re:`) are left as written."""
    if not isinstance(value, str) or value.startswith("re:"):
        return value
    bare = re.sub(r"\[\d+\]", "", path).strip()
    for rule in masker.rules("hl7v2"):
        if bare == rule.target or bare.startswith(rule.target + "."):
            pass_ = masker.new_pass()
            if rule.how == "name" and bare == rule.target:
                return "^".join(pass_.name(value.split("^")))
            return pass_.value(rule.how, value, precision=rule.precision)
    return value
