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


def _run_chunk(chunk: list[Item]) -> list[dict]:
    v = _WORKER
    assert v is not None
    return [v.validate(payload, source, index, charset=cs).as_dict() for source, index, payload, cs in chunk]


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
    chunk_size: int = 400,
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
    # bounded window of chunks in flight; results come back in submission order
    window = jobs * 3
    with ctx.Pool(jobs, initializer=_init, initargs=(version, profile_path, charset)) as pool:
        pending: deque = deque()
        for chunk in _chunks(items, chunk_size):
            pending.append(pool.apply_async(_run_chunk, (chunk,)))
            while len(pending) >= window:
                yield from pending.popleft().get()
        while pending:
            yield from pending.popleft().get()
