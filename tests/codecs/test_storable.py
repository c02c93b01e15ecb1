"""Metadata from hostile bodies is made storable, and says what was changed."""

from __future__ import annotations

import json

from harness.codecs.storable import MAX_DEPTH, MAX_TEXT, storable


def test_lone_surrogates_become_replacement_characters_with_a_problem_note():
    meta = storable({"msgid": "H\ud800X", "keep": "医保"})
    assert meta["msgid"] == "H\ufffdX" and meta["keep"] == "医保"
    assert any("lone surrogates" in p for p in meta["problems"])
    json.dumps(meta, ensure_ascii=False).encode("utf-8")  # what the store does with it


def test_deep_long_and_odd_values_are_bounded():
    deep: list = []
    node = deep
    for _ in range(500):
        node.append([])
        node = node[0]
    meta = storable({"v": deep, "t": "x" * (MAX_TEXT + 10), "f": float("nan"), "b": b"\x00"})
    text = json.dumps(meta)
    assert text.count("[") <= MAX_DEPTH + 2 and "nested deeper" in text
    assert len(meta["t"]) == MAX_TEXT + 1 and meta["f"] == "nan" and meta["b"] == "b'\\x00'"
    assert len(meta["problems"]) == 4


def test_clean_metadata_is_left_as_it_is():
    meta = {"infno": "2207", "infcode": 0, "ok": True, "issues": [{"code": "invalid"}]}
    assert storable(meta) == meta
