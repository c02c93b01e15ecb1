"""The compiled standard: same content as hl7apy's reference modules, cached on disk, loaded lazily."""

from __future__ import annotations

import pytest

from harness.hl7v2 import reference


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(reference, "_LOADED", {})
    return tmp_path


def test_compiled_tables_match_hl7apy(cache):
    from hl7apy import v2_5

    std = reference.load("2.5")
    assert set(std.structures) == set(v2_5.MESSAGES)
    pid = std.segments["PID"]
    assert len(pid) == len(v2_5.SEGMENTS["PID"][1])
    name, dt, lo, hi, table = pid[2]  # PID-3
    assert (dt, lo, hi) == ("CX", 1, -1)
    assert pid[7][1:] == ("IS", 0, 1, "HL70001")  # PID-8 administrative sex
    assert std.table("HL70001") == frozenset(v2_5.TABLES["HL70001"][1])
    assert [c[1] for c in std.datatypes["CE"]] == ["ST", "ST", "ID", "ST", "ST", "ID"]
    assert std.base["SI"] == 4 and std.base["ST"] == 199
    body = std.structures["ADT_A01"]
    assert body[0] == "seq" and body[1][0] == ("S", "MSH", 1, 1)
    groups = [c[1] for c in body[1] if c[0] == "G"]
    assert "ADT_A01_INSURANCE" in groups


def test_cache_written_and_reused(cache, monkeypatch):
    reference.load("2.3.1")
    files = list(cache.glob("hl7v2-reference-2.3.1-*.marshal"))
    assert len(files) == 1
    # a second process-like load reads the cache instead of compiling
    monkeypatch.setattr(reference, "_LOADED", {})
    monkeypatch.setattr(
        reference, "compile_version", lambda v: (_ for _ in ()).throw(AssertionError("compiled"))
    )
    std = reference.load("2.3.1")
    assert "ADT_A01" in std.structures


def test_corrupt_cache_is_rebuilt(cache, monkeypatch):
    reference.load("2.4")
    path = next(cache.glob("hl7v2-reference-2.4-*.marshal"))
    path.write_bytes(b"not marshal")
    monkeypatch.setattr(reference, "_LOADED", {})
    assert "ORU_R01" in reference.load("2.4").structures


def test_every_shipped_version_compiles(cache):
    for version in reference.VERSIONS:
        std = reference.load(version)
        assert std.structures and std.segments, version


def test_unknown_version_names_the_supported_ones():
    with pytest.raises(reference.UnsupportedVersion) as exc:
        reference.load("2.9")
    assert "2.9" in str(exc.value) and "2.5.1" in str(exc.value) and "2.8.2" in str(exc.value)
