"""The key comes from a file or the environment, is long enough, and is never kept beside the data."""

from __future__ import annotations

import stat

import pytest

from harness.mask import key


def test_without_a_key_the_error_says_where_it_looked_and_how_to_make_one(monkeypatch):
    monkeypatch.delenv(key.KEY_ENV, raising=False)
    monkeypatch.delenv(key.KEY_FILE_ENV, raising=False)
    with pytest.raises(key.MaskKeyError, match="--key-file.*HARNESS_MASK_KEY.*--new-key"):
        key.load()


def test_a_short_key_is_refused(monkeypatch):
    monkeypatch.setenv(key.KEY_ENV, "short")
    with pytest.raises(key.MaskKeyError, match="at least 16"):
        key.load()


def test_the_environment_holds_the_key_or_names_its_file(monkeypatch, tmp_path):
    monkeypatch.setenv(key.KEY_ENV, "an-environment-secret-of-length")
    assert key.load() == b"an-environment-secret-of-length"
    path = key.new(tmp_path / "keys" / "mask.key")
    monkeypatch.setenv(key.KEY_FILE_ENV, str(path))
    assert key.load() == path.read_bytes().strip()


def test_a_new_key_is_private_random_and_never_overwritten(tmp_path):
    first = key.new(tmp_path / "k1")
    second = key.new(tmp_path / "k2")
    assert stat.S_IMODE(first.stat().st_mode) == 0o600
    assert first.read_bytes() != second.read_bytes() and len(key.load(first)) >= 32
    with pytest.raises(key.MaskKeyError, match="never overwritten"):
        key.new(first)


def test_a_key_file_beside_the_data_or_inside_a_data_folder_is_refused(tmp_path):
    data = tmp_path / "reports"
    data.mkdir()
    store = data / "captures.db"
    store.write_bytes(b"")
    beside = key.new(data / "mask.key")
    with pytest.raises(key.MaskKeyError, match="beside the data"):
        key.load(beside, data_paths=[store])
    inside = key.new(data / "secrets" / "mask.key")
    with pytest.raises(key.MaskKeyError, match="beside the data"):
        key.load(inside, data_paths=[data])
    apart = key.new(tmp_path / "keys" / "mask.key")
    assert key.load(apart, data_paths=[store, data])
