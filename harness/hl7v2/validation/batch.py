"""Validate many messages, in this process or in worker processes fed with chunks of raw bytes.

Workers build their own Validator once (tables load from the on-disk cache), receive lists of
(source, index, payload, charset) and send back result dicts; chunks keep the per-message
inter-process cost small, and results are yielded in input order.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Iterable, Iterator
from itertools import islice

from harness.hl7v2.validation.validator import Validator

Item = tuple[str, int, bytes, "str | None"]

_WORKER: Validator | None = None


def _make(version: str | None, profile_path: str | None, charset: str | None) -> Validator:
    profile = None
    if profile_path:
        from harness.hl7v2.validation.profile import load

        profile = load(profile_path)
    return Validator(version=version, profile=profile, charset=charset)


def _init(version: str | None, profile_path: str | None, charset: str | None) -> None:
    global _WORKER
    _WORKER = _make(version, profile_path, charset)


def _run_chunk(chunk: list[tuple[bytes, str | None]]) -> list[tuple]:
    """Compact results (plain tuples pickle several times faster than dicts of dicts)."""
    v = _WORKER
    assert v is not None
    out = []
    for payload, cs in chunk:
        r = v.validate(payload, charset=cs)
        findings = tuple(
            (
                f.severity,
                f.code,
                str(f.location),
                f.message,
                f.expected,
                f.actual,
                tuple(f.location.as_dict().values()),
            )
            for f in r.findings
        )
        out.append((r.valid, r.control_id, r.message_type, r.structure, r.version, findings))
    return out


_POSITION = ("segment_index", "segment", "field", "repetition", "component", "subcomponent", "group")


def _as_dict(source: str, index: int, row: tuple) -> dict:
    valid, control_id, message_type, structure, version, findings = row
    return {
        "source": source,
        "index": index,
        "control_id": control_id,
        "message_type": message_type,
        "structure": structure,
        "version": version,
        "valid": valid,
        "findings": [
            {
                "severity": f[0],
                "code": f[1],
                "location": f[2],
                "position": dict(zip(_POSITION, f[6], strict=True)),
                "message": f[3],
                "expected": f[4],
                "actual": f[5],
            }
            for f in findings
        ],
    }


def _chunks(items: Iterable[Item], size: int) -> Iterator[list[Item]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def validate_many(
    items: Iterable[Item],
    *,
    version: str | None = None,
    profile_path: str | None = None,
    charset: str | None = None,
    jobs: int = 1,
    chunk_size: int = 1000,
) -> Iterator[dict]:
    """Result dicts (Result.as_dict()) in input order. jobs <= 0 means one per CPU."""
    if jobs <= 0:
        jobs = os.cpu_count() or 1
    if jobs == 1:
        v = _make(version, profile_path, charset)
        for source, index, payload, cs in items:
            yield v.validate(payload, source, index, charset=cs).as_dict()
        return
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    # the input is read here, in the calling thread (a store cursor must stay on its thread), with a
    # bounded window of chunks in flight; only payloads travel to the workers, results come back as
    # tuples in submission order
    window = jobs * 3
    with ctx.Pool(jobs, initializer=_init, initargs=(version, profile_path, charset)) as pool:
        pending: deque = deque()
        for chunk in _chunks(items, chunk_size):
            ids = [(source, index) for source, index, _, _ in chunk]
            job = pool.apply_async(_run_chunk, ([(payload, cs) for _, _, payload, cs in chunk],))
            pending.append((ids, job))
            while len(pending) >= window:
                ids, job = pending.popleft()
                yield from (_as_dict(src, idx, row) for (src, idx), row in zip(ids, job.get(), strict=True))
        while pending:
            ids, job = pending.popleft()
            yield from (_as_dict(src, idx, row) for (src, idx), row in zip(ids, job.get(), strict=True))
