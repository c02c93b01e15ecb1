"""The audit chain without I/O: any single edit, removal, swap or insertion is found and located."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.audit.chain import GENESIS, Entry, compare, digest, link, parse_line, verify, verify_copy

STORE = "0123456789abcdef0123456789abcdef"


def chain(n: int, store: str = STORE, file: str | None = None) -> list[Entry]:
    out: list[Entry] = []
    for i in range(n):
        out.append(
            link(
                out[-1] if out else None, when=1_764_072_000.0 + i, store=store,
                actor={"user": "ops", "uid": 1000}, host="hc-proxy-1", action="capture.export",
                target="reports/captures.db", details={"ids": [i, i + 1], "unmasked": i % 2 == 0}, file=file,
            )
        )  # fmt: skip
    return out


def rehash(entry: Entry, **changes) -> Entry:
    """What someone who knows the encoding does: change the entry and compute a fresh hash."""
    changed = dataclasses.replace(entry, **changes)
    return dataclasses.replace(changed, hash=digest(changed.body()))


sizes = st.integers(min_value=2, max_value=12)


def test_a_whole_chain_verifies_and_names_its_head():
    entries = chain(5)
    verdict = verify(entries)
    assert verdict.ok and verdict.entries == 5
    assert verdict.head is entries[-1]
    assert entries[0].prev_hash == GENESIS and entries[0].seq == 1
    assert all(b.prev_hash == a.hash for a, b in zip(entries, entries[1:], strict=False))


def test_the_encoding_is_canonical_json_and_round_trips_through_a_line():
    entry = chain(3)[2]
    again = parse_line(entry.line(), "line 3")
    assert again == entry
    assert entry.line() == again.line()
    assert verify([*chain(2), again]).ok


@given(sizes, st.data())
def test_an_edited_entry_is_found_at_its_sequence(n, data):
    entries = chain(n)
    i = data.draw(st.integers(0, n - 1))
    field, value = data.draw(
        st.sampled_from(
            [("host", "elsewhere"), ("action", "replay"), ("target", "other.db"), ("details", {"ids": []}),
             ("actor", {"user": "root", "uid": 0}), ("time", "2020-01-01T00:00:00.000000Z"), ("file", "/x")]
        )
    )  # fmt: skip
    entries[i] = dataclasses.replace(entries[i], **{field: value})
    (problem,) = verify(entries).problems
    assert (problem.kind, problem.seq, problem.position) == ("changed", i + 1, i)


@given(sizes, st.data())
def test_an_entry_rewritten_with_a_fresh_hash_breaks_the_next_link(n, data):
    entries = chain(n)
    head = entries[-1].hash
    i = data.draw(st.integers(0, n - 1))
    entries[i] = rehash(entries[i], details={"ids": [99]})
    verdict = verify(entries, anchor=head)
    (problem,) = verdict.problems
    if i < n - 1:
        assert (problem.kind, problem.seq, problem.position) == ("unlinked", i + 2, i + 1)
        assert f"entry {i + 1} was rewritten" in problem.message
    else:  # the last entry has no successor: only the anchored head hash shows it
        assert problem.kind == "truncated"
        assert verify(entries).ok


@given(sizes, st.data())
def test_a_removed_entry_is_named(n, data):
    entries = chain(n)
    head = entries[-1].hash
    i = data.draw(st.integers(0, n - 1))
    del entries[i]
    (problem,) = verify(entries, anchor=head).problems
    if i < n - 1:
        assert (problem.kind, problem.seq, problem.position) == ("removed", i + 1, i)
        assert f"entry {i + 1} removed" in problem.message
    else:
        assert problem.kind == "truncated"


@given(sizes, st.data())
def test_two_swapped_entries_are_found_where_the_order_breaks(n, data):
    entries = chain(n)
    i = data.draw(st.integers(0, n - 2))
    j = data.draw(st.integers(i + 1, n - 1))
    entries[i], entries[j] = entries[j], entries[i]
    (problem,) = verify(entries).problems
    assert (problem.kind, problem.seq, problem.position) == ("reordered", j + 1, i)


@given(sizes, st.data())
def test_an_inserted_entry_is_found_even_when_forged_with_a_valid_hash_and_link(n, data):
    entries = chain(n)
    i = data.draw(st.integers(1, n - 1))
    forged = rehash(entries[i], actor={"user": "mallory", "uid": 666}, details={"ids": [1]})
    # the best forgery: the sequence and the link its position expects, a correct hash
    entries.insert(i, forged)
    (problem,) = verify(entries).problems
    assert (problem.kind, problem.seq, problem.position) == ("inserted", i + 1, i + 1)
    # a careless forgery (wrong sequence or no valid hash) is found at its own position
    clumsy = chain(n)
    clumsy.insert(i, dataclasses.replace(forged, hash="f" * 64))
    (problem,) = verify(clumsy).problems
    assert problem.position == i and problem.kind == "changed"


def test_a_whole_chain_rewritten_consistently_is_only_caught_by_an_anchor_or_a_copy():
    original = chain(4)
    forged: list[Entry] = []
    for entry in original:
        previous = forged[-1] if forged else None
        forged.append(rehash(entry, prev_hash=previous.hash if previous else GENESIS, host="forged"))
    assert verify(forged).ok  # the limit: a chain is only as safe as a hash kept elsewhere
    assert verify(forged, anchor=original[-1].hash).problems[0].kind == "truncated"
    report = compare(forged, original, "/var/log/harness/audit.jsonl", STORE)
    assert [p.kind for p in report.problems] == ["mismatch"] * 4


def test_a_copy_must_hold_what_was_written_to_it_and_match_the_store():
    name = "/var/log/harness/audit.jsonl"
    store = chain(5, file=name)
    assert not compare(store, store, name, STORE).problems
    missing = compare(store, store[:2] + store[3:], name, STORE)
    assert [(p.kind, p.seq) for p in missing.problems] == [("removed", 3)]
    extra = compare(store[:4], store, name, STORE)
    assert [(p.kind, p.seq) for p in extra.problems] == [("removed", 5)]
    other = chain(3, store="f" * 32, file=name)
    assert not compare(store, store + other, name, STORE).problems  # another store's lines are skipped


def test_a_copy_on_its_own_checks_hashes_order_and_links():
    entries = chain(4)
    assert verify_copy(entries[1:]).ok  # a copy may start late
    assert verify_copy([entries[0], entries[2]]).ok  # and skip what was recorded without it
    assert verify_copy([entries[1], entries[0]]).problems[0].kind == "reordered"
    assert verify_copy([rehash(entries[0], host="x"), entries[1]]).problems[0].kind == "unlinked"
    assert verify_copy([dataclasses.replace(entries[0], host="x")]).problems[0].kind == "changed"


def test_details_that_are_not_json_are_refused_before_anything_is_written():
    with pytest.raises(TypeError):
        link(None, when=0.0, store=STORE, actor={}, host="h", action="a", target="t", details={"x": {1, 2}})
    with pytest.raises(ValueError):
        link(
            None,
            when=0.0,
            store=STORE,
            actor={},
            host="h",
            action="a",
            target="t",
            details={"x": float("nan")},
        )
